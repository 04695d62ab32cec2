-- wrk script for bench/hyper.sh: `wrk ... -s hyper.lua URL -- WORKLOAD WORDS_FILE`.
-- WORKLOAD: get | query | search | add. The same requests go to every server (hyper's REST API).
-- Every response is checked (status, and the shape of a correct answer), and the summary line
-- (JSON) carries the count, so a fast wrong answer cannot pass for speed:
--   get     GET /data/bench/movie-NNNNN (one of the 10,000 preloaded)   200, the raw doc
--   query   POST /data/bench/_query {type: movie, year >= Y}, limit 25  200, exactly 25 docs
--   search  POST /search/bench/_query {query: one vocabulary word}      200, at least one match
--   add     POST /data/bench, a new doc with a unique _id              201, {"ok":true, ...}

local threads = {}
local counter = 0
local STORE = "bench"

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
  table.insert(threads, thread)
end

function init(args)
  workload = args[1] or "get"
  math.randomseed(os.time() * 1000 + seed)
  run = string.format("%d%04d", os.time(), math.random(0, 9999))
  n = 0
  errors = 0
  checked = 0
  sample = ""
  words = {}
  if args[2] then
    for line in io.lines(args[2]) do
      if line ~= "" then table.insert(words, line) end
    end
  end
  if #words == 0 then words = {"movie"} end
end

local json_headers = {["Content-Type"] = "application/json"}

function request()
  if workload == "get" then
    return wrk.format("GET", string.format("/data/%s/movie-%05d", STORE, math.random(1, 10000)))
  elseif workload == "query" then
    local body = string.format('{"selector":{"type":"movie","year":{"$gte":"%d"}},"limit":25}', math.random(1950, 2010))
    return wrk.format("POST", "/data/" .. STORE .. "/_query", json_headers, body)
  elseif workload == "search" then
    local body = string.format('{"query":"%s"}', words[math.random(1, #words)])
    return wrk.format("POST", "/search/" .. STORE .. "/_query", json_headers, body)
  else
    n = n + 1
    local body = string.format(
      '{"_id":"add-%s-%d-%d","type":"added","year":"%d","title":"%s %s","plot":"%s %s %s %s %s","rating":%d}',
      run, seed, n, math.random(1950, 2019), words[math.random(1, #words)], words[math.random(1, #words)],
      words[math.random(1, #words)], words[math.random(1, #words)], words[math.random(1, #words)],
      words[math.random(1, #words)], words[math.random(1, #words)], math.random(1, 10))
    return wrk.format("POST", "/data/" .. STORE, json_headers, body)
  end
end

local function count(body, needle)
  local c, i = 0, 1
  while true do
    local s, e = string.find(body, needle, i, true)
    if not s then return c end
    c = c + 1
    i = e + 1
  end
end

function response(status, headers, body)
  checked = checked + 1
  local good
  if workload == "get" then
    good = status == 200 and string.find(body, '"type":"movie"', 1, true) ~= nil
  elseif workload == "query" then
    good = status == 200 and count(body, '"type":"movie"') == 25
  elseif workload == "search" then
    good = status == 200 and string.find(body, '"matches":[{', 1, true) ~= nil
  else
    good = status == 201 and string.find(body, '"ok":true', 1, true) ~= nil
  end
  if not good then
    errors = errors + 1
    if sample == "" then sample = string.format("HTTP %d: %s", status, string.sub(body, 1, 300)) end
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
