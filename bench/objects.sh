#!/usr/bin/env bash
# How the object API grows with a container's size, on the embedded default (release build,
# loopback), with wrk.
#
#   bench/objects.sh [seconds-per-kind] [sizes...]
#     For each size (default 1000 10000 100000) a fresh server with one tenant and one
#     container holding that many objects, spread over 100 pseudo-directories; then at 32
#     connections: the first listing page (limit 100), a page from the middle (marker), a
#     page under one prefix, a delimiter listing (100 subdirs rolled up), HEAD of the
#     container, GET and PUT of an object.
#
# Each line: req/s, p50/p99 latency and errors. A listing page must cost the page, not the
# container: its req/s should stay flat as the container grows.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 100000)
source bench/server.sh

# run LABEL METHOD PATH
run() {
  BENCH_METHOD=$2 BENCH_PATH=$3 BENCH_TOKEN=$token BENCH_LABEL=$1 \
    wrk -t2 -c32 -d"${seconds}s" -s bench/objects.lua "$root" | tail -1
}

for n in "${sizes[@]}"; do
  start_server
  # One tenant, a container of n objects named dirNN/objNNNNNN (16 bytes each).
  read -r token account < <(python3 - "$root" "$bin" "$work/data" "$n" <<'PY'
import concurrent.futures, json, os, subprocess, sys, urllib.request
root, binary, data, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
env = dict(os.environ, CLOUD_IMAGES_DATA_DIR=data, RUST_LOG="warn")
subprocess.run([binary, "tenant", "create", "bench", "--json"], env=env, check=True, capture_output=True)
user = json.loads(subprocess.run([binary, "user", "create", "--tenant", "bench", "bench", "--json"],
                                 env=env, check=True, capture_output=True).stdout)
auth = json.dumps({"auth": {"RAX-KSKEY:apiKeyCredentials": {"username": "bench", "apiKey": user["api_key"]}}})
request = urllib.request.Request(root + "/v2.0/tokens", data=auth.encode(), headers={"Content-Type": "application/json"})
token = json.load(urllib.request.urlopen(request))["access"]["token"]["id"]
account = f"/v1/AUTH_{user['tenant_id']}"
def put(path, body=b""):
    urllib.request.urlopen(urllib.request.Request(root + path, data=body, method="PUT", headers={"X-Auth-Token": token})).read()
put(f"{account}/c")
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(lambda i: put(f"{account}/c/dir{i % 100:02d}/obj{i:06d}", b"0123456789abcdef"), range(n)))
print(token, account)
PY
)
  middle=$(printf 'dir50/obj%06d' $((n / 2)))
  echo "== one container, $n objects"
  run "list first page" GET "$account/c?format=json&limit=100"
  run "list from the middle" GET "$account/c?format=json&limit=100&marker=$middle"
  run "list one prefix" GET "$account/c?format=json&limit=100&prefix=dir07/"
  run "list by delimiter" GET "$account/c?format=json&limit=100&delimiter=/"
  run "head container" HEAD "$account/c"
  run "get object" GET "$account/c/dir01/obj000001"
  run "put object" PUT "$account/c/dir01/obj000001"
  stop_server
done
