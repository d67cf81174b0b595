-- POST /v1/usage (or /v1/usage/batch with BATCH events), a unique idempotency key per
-- event, round-robin over TEAMS_FILE.
local counter = 0
local id = 0
function setup(thread)
  thread:set("tid", id)
  id = id + 1
end
function init(args)
  teams = {}
  for line in io.lines(os.getenv("TEAMS_FILE")) do teams[#teams + 1] = line end
  prefix = os.getenv("KEY_PREFIX")
  amount = os.getenv("AMOUNT") or "0.0001"
  batch = tonumber(os.getenv("BATCH") or "0")
  dimensions = os.getenv("DIMENSIONS") == "1"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end
local function event(team, key)
  -- DIMENSIONS=1: a description and two dimensions, as metered API calls carry them.
  local extra = ""
  if dimensions then
    local n = counter % 8
    extra = ',"description":"chat","dimensions":{"model":"m' .. n .. '","region":"r' .. (n % 4) .. '"}'
  end
  return '{"teamId":"' .. team .. '","amount":"' .. amount .. '","idempotencyKey":"' .. key .. '"' .. extra .. '}'
end
request = function()
  counter = counter + 1
  if batch > 0 then
    local events = {}
    for i = 1, batch do
      local n = counter * batch + i
      events[i] = event(teams[(n % #teams) + 1], prefix .. tid .. "-" .. n)
    end
    return wrk.format("POST", "/v1/usage/batch", nil, '{"events":[' .. table.concat(events, ",") .. ']}')
  end
  local team = teams[(counter % #teams) + 1]
  return wrk.format("POST", "/v1/usage", nil, event(team, prefix .. tid .. "-" .. counter))
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d p50=%.3f p95=%.3f p99=%.3f duration_us=%d\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, summary.duration))
end
