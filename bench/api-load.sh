#!/usr/bin/env bash
# Load benchmark of the images API on the embedded default (release build, loopback), with wrk.
#
#   bench/api-load.sh [seconds-per-kind]
#     10,000 images across 100 tenants, then show / list (limit 25, one filter, a sort) /
#     create / patch at 64 connections, then patch-one (every connection PATCHing one image,
#     racing each other's compare-and-set: errors must stay 0).
#   bench/api-load.sh scale [seconds-per-kind] [sizes...]
#     How requests grow with a tenant's image count: for each size (default 1000 10000
#     100000) a fresh server with one tenant owning that many images, then 100 tenants x
#     1,000; list pages (default order, by name, each with and without a filter), show,
#     create and patch at 32 connections.
#
# Each line: req/s, p50/p99 latency and errors; the server's resident memory is printed too.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=load
if [ "${1:-}" = scale ]; then mode=scale; shift; fi
seconds=${1:-10}
shift || true
source bench/server.sh

rss() { awk '/VmRSS/ {print $2 " kB"}' /proc/$server/status; }

# run KIND CONNECTIONS [LABEL [QUERY]]
run() {
  BENCH_KIND=$1 BENCH_LABEL=${3:-$1} BENCH_QUERY=${4:-} BENCH_DIR=$work \
    wrk -t2 -c"$2" -d"${seconds}s" -s bench/requests.lua "$root" | tail -1
}

if [ $mode = load ]; then
  start_server
  python3 bench/seed.py "$root" "$bin" "$work/data" 100 10000 "$work"
  echo "server RSS after seeding: $(rss)"
  for kind in show list create patch patch-one; do run $kind 64; done
  echo "server RSS after the run: $(rss)"
  exit 0
fi

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 100000)
# tenants:images pairs; the last spreads 100,000 images over 100 tenants.
runs=()
for n in "${sizes[@]}"; do runs+=("1:$n"); done
runs+=("100:100000")
for pair in "${runs[@]}"; do
  tenants=${pair%%:*} images=${pair##*:}
  start_server
  python3 bench/seed.py "$root" "$bin" "$work/data" "$tenants" "$images" "$work" >/dev/null
  echo "== $tenants tenant(s), $images images (server RSS $(rss))"
  run list 32 "list newest" "limit=25"
  run list 32 "list newest raw" "limit=25&disk_format=raw"
  run list 32 "list by name" "limit=25&sort_key=name&sort_dir=asc"
  run list 32 "list by name raw" "limit=25&sort_key=name&sort_dir=asc&disk_format=raw"
  run list 32 "list by name, tag t3" "limit=25&sort_key=name&sort_dir=asc&tag=t3"
  run show 32
  run create 32
  run patch 32
  stop_server
done
