-- A fixed POST body (BODY), optional bearer token; prints percentiles.
function init(args)
  wrk.method = "POST"
  wrk.body = os.getenv("BODY")
  wrk.headers["Content-Type"] = "application/json"
  local token = os.getenv("TOKEN")
  if token and #token > 0 then wrk.headers["Authorization"] = "Bearer " .. token end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d p50=%.3f p95=%.3f p99=%.3f duration_us=%d\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, summary.duration))
end
