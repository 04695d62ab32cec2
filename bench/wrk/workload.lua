-- wrk script for every workload and target: `wrk ... -s workload.lua URL -- WORKLOAD TARGET`.
-- WORKLOAD: get | find | find-match | find-page | upsert | count | get-apq; TARGET: arcbase | pg4 | pg5 | static.
-- find-match: find for members that have matching messages only (see find_body).
-- find-page: find 25 of every member's messages with `score > 5` after a cursor: a full page at
-- every dataset size (each response must hold 25 edges), arcbase only.
-- Further arguments: MESSAGES (the dataset's size, default 100000), HASH (get-apq).
-- Every response is checked: a status other than 200 or a body with "errors" is counted, and
-- the summary line (JSON) carries the count, so a fast wrong answer cannot pass for speed.

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
  table.insert(threads, thread)
end

function init(args)
  workload = args[1] or "get"
  target = args[2] or "arcbase"
  -- How many messages the dataset holds (ids m000001 ... mN), and for get-apq the SHA-256 of
  -- GET_QUERY (registered by the caller before the run).
  messages = tonumber(args[3] or "") or 100000
  apq_hash = args[4] or ""
  math.randomseed(os.time() * 1000 + seed)
  errors = 0
  checked = 0
  sample = ""
end

-- Real clients send one text per operation and put what changes in the variables: so does
-- every target here (each server may then keep the parsed text).
local function json_string(s)
  return (string.format("%q", s):gsub("\\\n", "\\n"))
end

local function q(text, vars)
  return '{"query":' .. json_string(text) .. ',"variables":' .. vars .. '}'
end

GET_QUERY = "query Get($id: String!) { get(type: Message, id: $id) { ... on Message { text score } } }"
local FIND_QUERY = "query Find($arcql: String!, $after: String) { find(type: Message, arcql: $arcql, first: 25, after: $after) { edges { cursor node { ... on Message { text score } } } pageInfo { hasNextPage endCursor } } }"
local COUNT_QUERY = "query Count($where: String) { aggregate { message(where: $where) { score { count sum } } } }"
local UPSERT_QUERY = "mutation Upsert($values: HypiUpsertInputUnion!) { upsert(values: $values) { id } }"

local function message_id()
  return string.format("m%06d", math.random(1, messages))
end

local function get_body()
  local i = math.random(1, messages)
  if target == "pg4" then return q("query Get($id: Int!) { messageById(id: $id) { text score } }", string.format('{"id":%d}', i)) end
  if target == "pg5" then return q("query Get($id: Int!) { messageByRowId(rowId: $id) { text score } }", string.format('{"id":%d}', i)) end
  return q(GET_QUERY, string.format('{"id":"m%06d"}', i))
end

-- A member's messages all have the same score (the loader's (i * 37) % 100, i = member mod
-- 1,000), so for 6 % of the members (a * 37 % 100 <= 5) no message matches `score > 5` and a
-- page reads every message after the cursor to find none. find draws every member; find-match
-- only those with matches.
local function find_body(matching)
  local a = math.random(1, 1000)
  while matching and (a * 37) % 100 <= 5 do a = math.random(1, 1000) end
  -- A cursor within the first half of the messages (it must name an object).
  local after = a + 1000 * math.random(0, math.max(0, math.floor(messages / 2000) - 1))
  if target == "pg4" or target == "pg5" then
    local idf = (target == "pg4") and "id" or "rowId"
    return q(string.format(
      "query Find($a: Int!, $after: Int!) { allMessages(first: 25, orderBy: PRIMARY_KEY_ASC, condition: {accountId: $a}, filter: {score: {greaterThan: 5}, %s: {greaterThan: $after}}) { nodes { text score } pageInfo { hasNextPage endCursor } } }",
      idf), string.format('{"a":%d,"after":%d}', a, after))
  end
  return q(FIND_QUERY, string.format('{"arcql":"account.hypi.id = \'a%04d\' AND score > 5","after":"m%06d"}', a, after))
end

-- Messages in id order after a cursor in the first half of the dataset: 94 % match, so a page
-- reads about 27 rows by the primary key whatever the size.
local function find_page_body()
  local after = math.random(1, math.max(1, math.floor(messages / 2)))
  return q(FIND_QUERY, string.format('{"arcql":"score > 5","after":"m%06d"}', after))
end

local function count_body()
  local a = math.random(1, 1000)
  if target == "pg4" or target == "pg5" then
    return q("query Count($a: Int!) { allMessages(condition: {accountId: $a}) { totalCount aggregates { sum { score } } } }",
      string.format('{"a":%d}', a))
  end
  return q(COUNT_QUERY, string.format('{"where":"account.hypi.id = \'a%04d\'"}', a))
end

-- 25 objects: 12 updates of existing messages, 13 new messages.
local pg_upsert_text = {}
local function pg_upsert_query()
  if pg_upsert_text[target] then return pg_upsert_text[target] end
  local defs, parts = {}, {}
  local upd = (target == "pg4") and "updateMessageById(input: {id: $i%d, messagePatch: {score: $s%d}})"
                                or "updateMessageByRowId(input: {rowId: $i%d, messagePatch: {score: $s%d}})"
  for k = 1, 12 do
    table.insert(defs, string.format("$i%d: Int!, $s%d: Int!", k, k))
    table.insert(parts, string.format("u%d: " .. upd .. " { clientMutationId }", k, k, k))
  end
  for k = 1, 13 do
    table.insert(defs, string.format("$cs%d: Int!, $ca%d: Int!", k, k))
    table.insert(parts, string.format(
      'c%d: createMessage(input: {message: {text: "new", score: $cs%d, accountId: $ca%d}}) { clientMutationId }', k, k, k))
  end
  pg_upsert_text[target] = "mutation Upsert(" .. table.concat(defs, ", ") .. ") { " .. table.concat(parts, " ") .. " }"
  return pg_upsert_text[target]
end

local function upsert_body()
  local vars = {}
  if target == "pg4" or target == "pg5" then
    for k = 1, 12 do
      table.insert(vars, string.format('"i%d":%d,"s%d":%d', k, math.random(1, messages), k, math.random(0, 99)))
    end
    for k = 1, 13 do
      table.insert(vars, string.format('"cs%d":%d,"ca%d":%d', k, math.random(0, 99), k, math.random(1, 1000)))
    end
    return q(pg_upsert_query(), "{" .. table.concat(vars, ",") .. "}")
  end
  for k = 1, 12 do
    table.insert(vars, string.format('{"hypi":{"id":"%s"},"score":%d}', message_id(), math.random(0, 99)))
  end
  for k = 1, 13 do
    table.insert(vars, string.format('{"text":"new","score":%d,"account":{"hypi":{"id":"a%04d"}}}', math.random(0, 99), math.random(1, 1000)))
  end
  return q(UPSERT_QUERY, '{"values":{"Message":[' .. table.concat(vars, ",") .. ']}}')
end

local function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

-- get by id as an automatic persisted query over GET: only the hash and the variables travel.
local function get_apq_path()
  local vars = string.format('{"id":"m%06d"}', math.random(1, messages))
  local ext = '{"persistedQuery":{"version":1,"sha256Hash":"' .. apq_hash .. '"}}'
  return "/graphql?operationName=Get&variables=" .. urlencode(vars) .. "&extensions=" .. urlencode(ext)
end

function request()
  if workload == "get-apq" then
    return wrk.format("GET", get_apq_path(), {["Accept"] = "application/json"})
  end
  local body
  if workload == "find" or workload == "find-match" then body = find_body(workload == "find-match")
  elseif workload == "find-page" then body = find_page_body()
  elseif workload == "count" then body = count_body()
  elseif workload == "upsert" then body = upsert_body()
  else body = get_body() end
  return wrk.format("POST", "/graphql", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  checked = checked + 1
  local short = workload == "find-page" and select(2, string.gsub(body, '"cursor"', '')) ~= 25
  if status ~= 200 or short or string.find(body, '"errors"', 1, true) or not string.find(body, '"data"', 1, true) then
    errors = errors + 1
    if sample == "" then sample = string.sub(body, 1, 300) end
  end
end

function done(summary, latency, requests)
  local e, c, s = 0, 0, ""
  for _, t in ipairs(threads) do
    e = e + t:get("errors")
    c = c + t:get("checked")
    if s == "" then s = t:get("sample") or "" end
  end
  io.write(string.format(
    '{"rps": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, "requests": %d, "checked": %d, "errors": %d, "socket_errors": %d, "sample_error": %s}\n',
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, c, e, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    string.format("%q", s):gsub("\\\n", "\\n")))
end
