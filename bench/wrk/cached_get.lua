-- wrk script for bench/object_cache.sh: `wrk ... -s cached_get.lua URL -- TYPE N`.
-- `get` by id of a random one of the N objects of TYPE (ids o000001 ...). A response counts as
-- an error unless it is 200 and carries the object (a fast `null` cannot pass for speed).

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
  table.insert(threads, thread)
end

function init(args)
  type_name = args[1] or "Plain"
  n = tonumber(args[2] or "10000")
  math.randomseed(os.time() * 1000 + seed)
  errors = 0
  checked = 0
end

function request()
  local i = math.random(1, n)
  local body = string.format(
    '{"query":"{ get(type: %s, id: \\"o%06d\\") { ... on %s { text score } } }"}', type_name, i, type_name)
  return wrk.format("POST", "/graphql", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  checked = checked + 1
  if status ~= 200 or not string.find(body, '"text":"t', 1, true) then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local e, c = 0, 0
  for _, t in ipairs(threads) do
    e = e + t:get("errors")
    c = c + t:get("checked")
  end
  io.write(string.format(
    '{"rps": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, "checked": %d, "errors": %d}\n',
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000, c, e))
end
