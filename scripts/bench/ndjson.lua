-- wrk: POST /gather with NDJSON bodies of 1 000 random events (bench.lua's distribution).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"

function init(args)
  math.randomseed(os.time())
  local lines = {}
  for i = 1, 1000 do
    lines[i] = string.format('{"label":"label%d","id":%d,"value":%d}',
      math.random(10, 100), math.random(10, 100), math.random(1, 100))
  end
  wrk.body = table.concat(lines, "\n")
end
