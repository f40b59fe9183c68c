#!/usr/bin/env bash
# Load benchmark of the images API on the embedded default (release build, loopback):
# 10,000 images across 100 tenants, then show / list (limit 25, one filter, a sort) /
# create / patch at 64 connections with wrk, then patch-one (every connection PATCHing one
# image, racing each other's compare-and-set: errors must stay 0), printing req/s, p50/p99
# latency, errors and the server's resident memory before and after.
# Usage: bench/api-load.sh [seconds-per-kind]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --locked --release -p cloud-images >/dev/null

work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
bin=target/release/cloud-images
CLOUD_IMAGES_DATA_DIR=$work/data RUST_LOG=warn "$bin" serve --listen 127.0.0.1:0 >"$work/out" 2>"$work/err" &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
root=$(sed -n 's/^Cloud Images listening on //p' "$work/out")
python3 bench/seed.py "$root" "$bin" "$work/data" 100 10000 "$work"
rss() { awk '/VmRSS/ {print $2 " kB"}' /proc/$server/status; }
echo "server RSS after seeding: $(rss)"
for kind in show list create patch patch-one; do
  BENCH_KIND=$kind BENCH_DIR=$work wrk -t2 -c64 -d"${seconds}s" -s bench/requests.lua "$root" | tail -1
done
echo "server RSS after the run: $(rss)"
