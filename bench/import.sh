#!/usr/bin/env bash
# Import benchmark (release build): one fixed VHD of SIZE MiB (default 2048) imported by a
# task from the local object store (embedded backend) and from the S3 emulator (aws
# backend), each beside a plain streaming copy of the same object through the same object
# store in the same run (bench/stream-copy: no hashing, inspection or metadata).
# Usage: bench/import.sh [MiB]
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-2048}
cargo build --locked --release -p cloud-images -p cloud-images-bench >/dev/null
bin=target/release
mkdir -p target/bench
work=$(mktemp -d -p target/bench)
server= emulator=
trap '[ -n "$server" ] && kill $server 2>/dev/null; [ -n "$emulator" ] && kill $emulator 2>/dev/null; rm -rf "$work"' EXIT

head -c "${mib}M" /dev/urandom >"$work/disk.raw"
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on "$work/disk.raw" "$work/disk.vhd"
rm "$work/disk.raw"
vhd=$work/disk.vhd
size_mib=$(python3 -c "import os; print(os.path.getsize('$vhd') / 2**20)")

start_server() {  # env assignments for the server as arguments
  env "$@" CLOUD_IMAGES_DATA_DIR="$work/data" RUST_LOG=warn "$bin/cloud-images" serve --listen 127.0.0.1:0 >"$work/out" 2>"$work/err" &
  server=$!
  for _ in $(seq 300); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
  root=$(sed -n 's/^Cloud Images listening on //p' "$work/out")
  created=$(env "$@" CLOUD_IMAGES_DATA_DIR="$work/data" RUST_LOG=warn "$bin/cloud-images" tenant create bench --json)
  tenant=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tenant_id"])' "$created")
  user=$(env "$@" CLOUD_IMAGES_DATA_DIR="$work/data" RUST_LOG=warn "$bin/cloud-images" user create --tenant bench bench --json)
  key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["api_key"])' "$user")
  token=$(curl -s "$root/v2.0/tokens" -H 'Content-Type: application/json' \
    -d "{\"auth\": {\"RAX-KSKEY:apiKeyCredentials\": {\"username\": \"bench\", \"apiKey\": \"$key\"}}}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access"]["token"]["id"])')
}

import_rate() {
  local t0 task status
  t0=$(date +%s.%N)
  task=$(curl -s "$root/v2/tasks" -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
    -d '{"type": "import", "input": {"import_from": "bench/disk.vhd", "import_from_format": "vhd"}}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  while :; do
    status=$(curl -s "$root/v2/tasks/$task" -H "X-Auth-Token: $token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    case $status in success) break ;; failure) echo "import failed" >&2; exit 1 ;; esac
    sleep 0.05
  done
  python3 -c "import sys; s=float(sys.argv[1]); print(f'{$size_mib / s:.0f} MiB/s ({$size_mib:.0f} MiB in {s:.2f} s)')" "$(python3 -c "print($(date +%s.%N) - $t0)")"
}

stop_server() { kill $server; wait $server 2>/dev/null || true; server=; rm -rf "$work/data"; }

echo "import of a ${mib} MiB fixed VHD (md5 + sha512 + inspection on):"
start_server
mkdir -p "$work/data/objects/$tenant/bench" && cp "$vhd" "$work/data/objects/$tenant/bench/disk.vhd" && sync
echo "  local object store: plain copy $("$bin/stream-copy" copy "dir:$work/data/objects" "$tenant" bench/disk.vhd bench/copy.vhd)"
echo "  local object store: import     $(import_rate)"
stop_server

if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  [ -x .venv-emu/bin/ministack ] || { python3 -m venv .venv-emu && .venv-emu/bin/pip install -q ministack==1.5.33; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  BIND_HOST=127.0.0.1 GATEWAY_PORT=$port .venv-emu/bin/ministack >"$work/ministack.log" 2>&1 &
  emulator=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/_ministack/health" && break; sleep 0.1; done
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port
fi
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test} AWS_REGION=${AWS_REGION:-us-east-1}
unique=bench$(date +%s)
start_server CLOUD_IMAGES_BACKEND=aws CLOUD_IMAGES_AWS_TABLE="$unique" CLOUD_IMAGES_AWS_BUCKET="$unique" CLOUD_IMAGES_AWS_QUEUE="$unique" CLOUD_IMAGES_AWS_CREATE_RESOURCES=true
"$bin/stream-copy" put "s3:$unique" "$tenant" "$vhd" bench/disk.vhd >/dev/null
# Known problem: on this machine the plain copy from ministack has ended with the SDK's
# "streaming error" on 1-2 GiB objects (before or after the import, which reads the same way
# and completes); it is printed as it is rather than hidden.
echo "  S3 emulator:        import     $(import_rate)"
echo "  S3 emulator:        plain copy $("$bin/stream-copy" copy "s3:$unique" "$tenant" bench/disk.vhd bench/copy.vhd)"
