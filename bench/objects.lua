-- wrk request generator for bench/objects.sh: one request, BENCH_METHOD BENCH_PATH with the
-- tenant's token (a PUT sends 16 bytes); prints one summary line labelled BENCH_LABEL.
local method = os.getenv("BENCH_METHOD")
local path = os.getenv("BENCH_PATH")
local token = os.getenv("BENCH_TOKEN")
local label = os.getenv("BENCH_LABEL")

function request()
  local body = nil
  if method == "PUT" then body = "0123456789abcdef" end
  return wrk.format(method, path, { ["X-Auth-Token"] = token }, body)
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + summary.errors.status
  io.write(string.format("%-24s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d\n",
    label, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errors))
end
