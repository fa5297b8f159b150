-- wrk load script: POST /gather with one random event per request, label and id drawn
-- from 10..100 like the original service's benchmark.
--
--   wrk -t2 -c64 -d30s -s bench.lua http://127.0.0.1:31115/gather

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

function request()
  local body = string.format('{"label":"label%d","id":%d,"value":%d}',
    math.random(10, 100), math.random(10, 100), math.random(1, 100))
  return wrk.format(nil, nil, nil, body)
end
