-- wrk script for every workload and target: `wrk ... -s workload.lua URL -- WORKLOAD TARGET`.
-- WORKLOAD: get | find | upsert | count; TARGET: arcbase | pg4 | pg5 | static.
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
  math.randomseed(os.time() * 1000 + seed)
  errors = 0
  checked = 0
  sample = ""
end

local function q(s)
  return '{"query":' .. string.format("%q", s):gsub("\\\n", "\\n") .. '}'
end

local function get_body()
  local i = math.random(1, 100000)
  if target == "pg4" then return q(string.format("{ messageById(id: %d) { text score } }", i)) end
  if target == "pg5" then return q(string.format("{ messageByRowId(rowId: %d) { text score } }", i)) end
  return q(string.format('{ get(type: Message, id: "m%06d") { ... on Message { text score } } }', i))
end

local function find_body()
  local a = math.random(1, 1000)
  local after = a + 1000 * math.random(0, 49)
  if target == "pg4" or target == "pg5" then
    local idf = (target == "pg4") and "id" or "rowId"
    return q(string.format(
      "{ allMessages(first: 25, orderBy: PRIMARY_KEY_ASC, condition: {accountId: %d}, filter: {score: {greaterThan: 5}, %s: {greaterThan: %d}}) { nodes { text score } pageInfo { hasNextPage endCursor } } }",
      a, idf, after))
  end
  return q(string.format(
    "{ find(type: Message, arcql: \"account.hypi.id = 'a%04d' AND score > 5\", first: 25, after: \"m%06d\") { edges { cursor node { ... on Message { text score } } } pageInfo { hasNextPage endCursor } } }",
    a, after))
end

local function count_body()
  local a = math.random(1, 1000)
  if target == "pg4" or target == "pg5" then
    return q(string.format("{ allMessages(condition: {accountId: %d}) { totalCount aggregates { sum { score } } } }", a))
  end
  return q(string.format("{ aggregate { message(where: \"account.hypi.id = 'a%04d'\") { score { count sum } } } }", a))
end

-- 25 objects: 12 updates of existing messages, 13 new messages.
local function upsert_body()
  local parts = {}
  if target == "pg4" or target == "pg5" then
    local upd = (target == "pg4") and "updateMessageById(input: {id: %d, messagePatch: {score: %d}})"
                                  or "updateMessageByRowId(input: {rowId: %d, messagePatch: {score: %d}})"
    for k = 1, 12 do
      table.insert(parts, string.format("u%d: " .. upd .. " { clientMutationId }", k, math.random(1, 100000), math.random(0, 99)))
    end
    for k = 1, 13 do
      table.insert(parts, string.format(
        'c%d: createMessage(input: {message: {text: "new", score: %d, accountId: %d}}) { clientMutationId }',
        k, math.random(0, 99), math.random(1, 1000)))
    end
    return q("mutation { " .. table.concat(parts, " ") .. " }")
  end
  for k = 1, 12 do
    table.insert(parts, string.format('{hypi: {id: "m%06d"}, score: %d}', math.random(1, 100000), math.random(0, 99)))
  end
  for k = 1, 13 do
    table.insert(parts, string.format('{text: "new", score: %d, account: {hypi: {id: "a%04d"}}}', math.random(0, 99), math.random(1, 1000)))
  end
  return q("mutation { upsert(values: {Message: [" .. table.concat(parts, ", ") .. "]}) { id } }")
end

function request()
  local body
  if workload == "find" then body = find_body()
  elseif workload == "count" then body = count_body()
  elseif workload == "upsert" then body = upsert_body()
  else body = get_body() end
  return wrk.format("POST", "/graphql", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  checked = checked + 1
  if status ~= 200 or string.find(body, '"errors"', 1, true) or not string.find(body, '"data"', 1, true) then
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
