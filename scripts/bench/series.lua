-- wrk: single events, value 1, over SERIES distinct (label, id) (environment variable).
-- Every acknowledged event adds exactly 1, so the table's sum must equal the 2xx count.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local series = tonumber(os.getenv("SERIES") or "100")
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end
function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end
function request()
  local s = math.random(0, series - 1)
  return wrk.format(nil, nil, nil,
    string.format('{"label":"series%d","id":%d,"value":1}', s % 100, math.floor(s / 100)))
end
