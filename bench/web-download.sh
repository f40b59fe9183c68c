#!/usr/bin/env bash
# web-download and copy-image benchmark (release build): one raw image of SIZE MiB (default
# 4096) served from a loopback HTTP server and imported with web-download into the local
# binary on the embedded backend and on the aws backend (S3 emulator), each beside a plain
# streaming copy of the same URL into the same store in the same run (bench/stream-copy
# fetch: the same fetcher, no hashing, inspection or metadata). Also prints the server's
# peak RSS above its idle RSS over the import: the bytes must stream, so it should not grow
# with the image. Then copy-image copies the imported image to the server's second store,
# beside a plain copy of the same bytes between the same two places (cp for directories,
# boto3's managed copy for buckets).
# Usage: bench/web-download.sh [MiB]
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-4096}
cargo build --locked --release -p cloud-images -p cloud-images-bench >/dev/null
bin=target/release
mkdir -p target/bench
work=$(mktemp -d -p target/bench)
server= emulator= web=
trap '[ -n "$server" ] && kill $server 2>/dev/null; [ -n "$emulator" ] && kill $emulator 2>/dev/null;
      [ -n "$web" ] && kill $web 2>/dev/null; rm -rf "$work"' EXIT

mkdir -p "$work/web"
head -c "${mib}M" /dev/urandom >"$work/web/disk.raw"
web_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$work/web" "$web_port" >/dev/null 2>&1 &
web=$!
url=http://127.0.0.1:$web_port/disk.raw
for _ in $(seq 100); do curl -sf -o /dev/null -r 0-0 "$url" && break; sleep 0.1; done

start_server() {  # env assignments for the server as arguments
  env "$@" CLOUD_IMAGES_DATA_DIR="$work/data" RUST_LOG=warn CLOUD_IMAGES_WEB_DOWNLOAD_ALLOW_INTERNAL=true \
    CLOUD_IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS="$web_port" "$bin/cloud-images" serve --listen 127.0.0.1:0 >"$work/out" 2>"$work/err" &
  server=$!
  for _ in $(seq 300); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
  root=$(sed -n 's/^Cloud Images listening on //p' "$work/out")
  created=$(env "$@" CLOUD_IMAGES_DATA_DIR="$work/data" RUST_LOG=warn "$bin/cloud-images" tenant create bench --json)
  tenant=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tenant_id"])' "$created")
  # An administrator: copy-image is an administrator's action.
  user=$(env "$@" CLOUD_IMAGES_DATA_DIR="$work/data" RUST_LOG=warn "$bin/cloud-images" user create --tenant bench bench --role admin --json)
  key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["api_key"])' "$user")
  token=$(curl -s "$root/v2.0/tokens" -H 'Content-Type: application/json' \
    -d "{\"auth\": {\"RAX-KSKEY:apiKeyCredentials\": {\"username\": \"bench\", \"apiKey\": \"$key\"}}}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access"]["token"]["id"])')
}

rss_kib() { awk "/^$1:/ {print \$2}" "/proc/$server/status"; }

import_rate() {
  local t0 id idle peak
  idle=$(rss_kib VmRSS)
  id=$(curl -s "$root/v2/images" -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
    -d '{"name": "bench", "disk_format": "raw", "container_format": "bare"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  t0=$(date +%s.%N)
  import_and_wait "$id" "{\"method\": {\"name\": \"web-download\", \"uri\": \"$url\"}}"
  peak=$(rss_kib VmHWM)
  python3 -c "import sys; s=float(sys.argv[1]); print(f'{$mib / s:.0f} MiB/s ({$mib} MiB in {s:.2f} s); peak RSS {$peak / 1024:.0f} MiB, {($peak - $idle) / 1024:.0f} MiB above idle')" \
    "$(python3 -c "print($(date +%s.%N) - $t0)")"
  echo "$id" >"$work/image-id"
}

# copy-image of the imported image to the second store, `cheap`.
copy_rate() {
  local t0
  t0=$(date +%s.%N)
  import_and_wait "$(cat "$work/image-id")" '{"method": {"name": "copy-image"}, "stores": ["cheap"]}'
  seconds "$t0"
}

# POST .../import with body $2 for image $1, then wait until no import holds the image.
import_and_wait() {
  local state
  curl -sf -o /dev/null "$root/v2/images/$1/import" -H "X-Auth-Token: $token" -H 'Content-Type: application/json' -d "$2"
  while :; do
    state=$(curl -s "$root/v2/images/$1" -H "X-Auth-Token: $token" |
      python3 -c 'import json,sys; i=json.load(sys.stdin); print("failed" if i.get("os_glance_failed_import") else ("done" if "os_glance_import_task" not in i else "running"))')
    case $state in done) break ;; failed) echo "import failed" >&2; exit 1 ;; esac
    sleep 0.05
  done
}

# "N MiB/s (N MiB in S s)" since $1.
seconds() {
  python3 -c "import sys; s=float(sys.argv[1]); print(f'{$mib / s:.0f} MiB/s ({$mib} MiB in {s:.2f} s)')" \
    "$(python3 -c "print($(date +%s.%N) - $1)")"
}

# Removes the objects of bucket $1 under prefix $2 (the plain copies: disk space).
delete_objects() {
  .venv-clients/bin/python - "$1" "$2" <<'PY'
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1], Prefix=sys.argv[2]):
    for item in page.get("Contents", []):
        s3.delete_object(Bucket=sys.argv[1], Key=item["Key"])
PY
}

stop_server() { kill $server; wait $server 2>/dev/null || true; server=; rm -rf "$work/data"; }

echo "web-download of a ${mib} MiB raw image from loopback (md5 + sha512 + inspection on), then copy-image:"
start_server CLOUD_IMAGES_STORES=fast=images,cheap=cheap
echo "  local store: plain copy $("$bin/stream-copy" fetch "dir:$work/copies" bench "$url" bench/copy.raw)"
rm -rf "$work/copies"
echo "  local store: import     $(import_rate)"
t0=$(date +%s.%N); cp "$work/data/images/$(cat "$work/image-id")" "$work/data/plain-copy"; sync
echo "  local stores: plain cp  $(seconds "$t0")"
rm -f "$work/data/plain-copy"
echo "  local stores: copy-image $(copy_rate)"
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
start_server CLOUD_IMAGES_BACKEND=aws CLOUD_IMAGES_AWS_TABLE="$unique" CLOUD_IMAGES_AWS_BUCKET="$unique" \
  CLOUD_IMAGES_AWS_QUEUE="$unique" CLOUD_IMAGES_AWS_CREATE_RESOURCES=true \
  CLOUD_IMAGES_STORES="fast=s3://$unique/images/,cheap=s3://$unique-cheap/images/"
echo "  S3 emulator: plain copy $("$bin/stream-copy" fetch "s3:$unique" "$tenant" "$url" bench/copy.raw)"
delete_objects "$unique" containers/
echo "  S3 emulator: import     $(import_rate)"
t0=$(date +%s.%N)
.venv-clients/bin/python - "$unique" "images/$(cat "$work/image-id")" <<'PY'
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
bucket, key = sys.argv[1], sys.argv[2]
s3.copy({"Bucket": bucket, "Key": key}, bucket + "-cheap", "plain-copy")
PY
echo "  S3 buckets: boto3 copy  $(seconds "$t0")"
delete_objects "$unique-cheap" plain-copy
echo "  S3 buckets: copy-image  $(copy_rate)"
stop_server
