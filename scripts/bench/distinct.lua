-- wrk: NDJSON bodies of 1 000 events cycling over DISTINCT series (environment variable,
-- default 200 000), so that every 2-second bucket holds that many distinct (label, id).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"
local distinct = tonumber(os.getenv("DISTINCT") or "200000")
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7919)
end
local next_id = 0
function init(args)
  next_id = (offset or 0) % distinct
end
function request()
  local lines = {}
  for i = 1, 1000 do
    local s = next_id
    next_id = (next_id + 1) % distinct
    lines[i] = string.format('{"label":"distinct%d","id":%d,"value":1}', s % 100, math.floor(s / 100))
  end
  return wrk.format(nil, nil, nil, table.concat(lines, "\n"))
end
