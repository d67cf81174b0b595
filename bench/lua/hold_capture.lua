-- Holds and their captures: POST /v1/holds, read the hold's id from the answer, and the
-- thread's next request captures part of it (POST /v1/holds/{id}/capture), naming the
-- hold's team as a gateway does (on Citus the hold is then found on its team's shard,
-- docs/scaling.md). A thread's connections share one queue of holds to capture.
local id = 0
function setup(thread)
  thread:set("tid", id)
  id = id + 1
end
function init(args)
  teams = {}
  for line in io.lines(os.getenv("TEAMS_FILE")) do teams[#teams + 1] = line end
  prefix = os.getenv("KEY_PREFIX")
  counter = 0
  pending = {}
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end
request = function()
  if #pending > 0 then
    local hold = table.remove(pending, 1)
    local path = "/v1/holds/" .. hold.id .. "/capture"
    return wrk.format("POST", path, nil, '{"amount":"0.0001","teamId":"' .. hold.team .. '"}')
  end
  counter = counter + 1
  local team = teams[(counter % #teams) + 1]
  local body = '{"teamId":"' .. team .. '","amount":"0.0002","idempotencyKey":"' .. prefix .. tid .. "-" .. counter .. '"}'
  return wrk.format("POST", "/v1/holds", nil, body)
end
response = function(status, headers, body)
  if status == 201 then
    local hold = string.match(body, '"id"%s*:%s*"([^"]+)"')
    local team = string.match(body, '"teamId"%s*:%s*"([^"]+)"')
    if hold and team then pending[#pending + 1] = {id = hold, team = team} end
  end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d p50=%.3f p95=%.3f p99=%.3f duration_us=%d\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, summary.duration))
end
