-- wrk: bench.lua's single events, each request with an Idempotency-Key of its own (a
-- client that names every request so that it may retry it).
wrk.method = "POST"

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

local prefix, sent
function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
  prefix = string.format("bench-%d-%d-%d-", os.time(), seed or 0, math.random(1, 1000000000))
  sent = 0
end

function request()
  sent = sent + 1
  local body = string.format('{"label":"label%d","id":%d,"value":%d}',
    math.random(10, 100), math.random(10, 100), math.random(1, 100))
  return wrk.format(nil, nil,
    {["Content-Type"] = "application/json", ["Idempotency-Key"] = prefix .. sent}, body)
end
