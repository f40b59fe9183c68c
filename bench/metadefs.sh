#!/usr/bin/env bash
# How the metadefs catalogue grows with its size, on the embedded default (release build,
# loopback), with wrk.
#
#   bench/metadefs.sh [seconds-per-kind] [sizes...]
#     For each size (default 100 1000 10000) a fresh server whose administrator adds that many
#     public namespaces (each with 5 properties, an object and 3 tags; every tenth associated
#     with OS::Glance::Image); then at 32 connections, as a member of another tenant: the
#     first page of the default list (25, newest first), a page filtered by resource type, one
#     namespace with its contents, one property, and the namespace's tags.
#
# Each line: req/s, p50/p99 latency and errors. Lists read every namespace's header and
# filter it (README "Metadata definitions"): this shows what that costs as the catalogue grows.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 1000 10000)
source bench/server.sh

# run LABEL METHOD PATH TOKEN
run() {
  BENCH_METHOD=$2 BENCH_PATH=$3 BENCH_TOKEN=$4 BENCH_LABEL=$1 \
    wrk -t2 -c32 -d"${seconds}s" -s bench/objects.lua "$root" | tail -1
}

for n in "${sizes[@]}"; do
  start_server
  read -r _admin member < <(python3 - "$root" "$bin" "$work/data" "$work/out" "$n" <<'PY'
import concurrent.futures, json, os, subprocess, sys, urllib.request
root, binary, data, out, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
env = dict(os.environ, CLOUD_IMAGES_DATA_DIR=data, RUST_LOG="warn")
printed = dict(line.strip().split(":", 1) for line in open(out) if ":" in line and "listening" not in line)
def token(body):
    request = urllib.request.Request(root + "/v2.0/tokens", data=json.dumps({"auth": body}).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))["access"]["token"]["id"]
admin = token({"passwordCredentials": {"username": "admin", "password": printed["password"].strip()}, "tenantName": "admin"})
subprocess.run([binary, "tenant", "create", "bench", "--json"], env=env, check=True, capture_output=True)
user = json.loads(subprocess.run([binary, "user", "create", "--tenant", "bench", "bench", "--json"],
                                 env=env, check=True, capture_output=True).stdout)
member = token({"RAX-KSKEY:apiKeyCredentials": {"username": "bench", "apiKey": user["api_key"]}})
def create(i):
    body = {"namespace": f"Bench::N{i:06d}", "visibility": "public",
            "properties": {f"p{k}": {"title": f"P{k}", "type": "string", "enum": ["a", "b", "c"]} for k in range(5)},
            "objects": [{"name": "o", "properties": {"q": {"title": "Q", "type": "integer"}}}],
            "tags": [{"name": f"t{k}"} for k in range(3)]}
    if i % 10 == 0:
        body["resource_type_associations"] = [{"name": "OS::Glance::Image", "prefix": "b_"}]
    request = urllib.request.Request(root + "/v2/metadefs/namespaces", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "X-Auth-Token": admin})
    urllib.request.urlopen(request).read()
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(create, range(n)))
print(admin, member)
PY
)
  ns="Bench::N$(printf '%06d' $((n / 2)))"
  echo "== $n namespaces"
  run "list first page" GET "/v2/metadefs/namespaces" "$member"
  run "list by resource type" GET "/v2/metadefs/namespaces?resource_types=OS::Glance::Image&limit=10" "$member"
  run "show namespace" GET "/v2/metadefs/namespaces/$ns" "$member"
  run "show property" GET "/v2/metadefs/namespaces/$ns/properties/p3" "$member"
  run "list tags" GET "/v2/metadefs/namespaces/$ns/tags" "$member"
  stop_server
done
