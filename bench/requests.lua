-- wrk request generator for bench/api-load.sh. BENCH_KIND picks the request:
-- show, list, create, patch or patch-one; a list asks for BENCH_QUERY (default: a page of
-- 25 raw images by name). Each request uses a random tenant's token (and one
-- of its images for show/patch), read from files seed.py wrote into BENCH_DIR; patch-one
-- sends every PATCH to one image, so the connections race each other's compare-and-set.
local kind = os.getenv("BENCH_KIND")
local dir = os.getenv("BENCH_DIR")
local pairs_ = {}
local tokens = {}

local function load()
  for line in io.lines(dir .. "/images.txt") do
    local token, id = line:match("^(%S+) (%S+)$")
    if token then pairs_[#pairs_ + 1] = { token = token, id = id } end
  end
  for line in io.lines(dir .. "/tokens.txt") do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
end

function init(args)
  load()
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

local n = 0
function request()
  n = n + 1
  if kind == "show" then
    local p = pairs_[math.random(#pairs_)]
    return wrk.format("GET", "/v2/images/" .. p.id, { ["X-Auth-Token"] = p.token })
  elseif kind == "list" then
    local token = tokens[math.random(#tokens)]
    local query = os.getenv("BENCH_QUERY") or "limit=25&disk_format=raw&sort_key=name&sort_dir=asc"
    return wrk.format("GET", "/v2/images?" .. query, { ["X-Auth-Token"] = token })
  elseif kind == "create" then
    local token = tokens[math.random(#tokens)]
    return wrk.format("POST", "/v2/images", { ["X-Auth-Token"] = token, ["Content-Type"] = "application/json" },
      '{"name": "load-' .. n .. '", "disk_format": "raw", "container_format": "bare"}')
  else
    local p = kind == "patch-one" and pairs_[1] or pairs_[math.random(#pairs_)]
    return wrk.format("PATCH", "/v2/images/" .. p.id,
      { ["X-Auth-Token"] = p.token, ["Content-Type"] = "application/openstack-images-v2.1-json-patch" },
      '[{"op": "add", "path": "/bench", "value": "' .. n .. '"}]')
  end
end

local bad = 0
function response(status, headers, body)
  if status >= 400 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local label = os.getenv("BENCH_LABEL") or kind
  io.write(string.format("%-24s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d\n", label,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
