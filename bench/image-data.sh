#!/usr/bin/env bash
# Image data benchmark on the embedded default (release build, loopback): upload and
# download of one image of SIZE MiB (default 2048) with curl, beside this machine's own
# limits measured on the same file in the same run (md5sum, sha512sum, both at once, cat,
# cp, cat of an uncached copy), and the server's RSS when idle and at its peak.
# Usage: bench/image-data.sh [MiB]
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-2048}
cargo build --locked --release -p cloud-images >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release/cloud-images
mkdir -p target/bench
work=$(mktemp -d -p target/bench)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
blob=$work/blob.raw
head -c "${mib}M" /dev/urandom >"$blob"
sync

rate() { python3 -c "import sys; print(f'{$mib / float(sys.argv[1]):8.0f} MiB/s  ({float(sys.argv[1]):.2f} s)')" "$1"; }
timed() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); python3 -c "print($t1 - $t0)"; }
both_hashes() { md5sum "$blob" & sha512sum "$blob" & wait; }

cat "$blob" >/dev/null   # warm the page cache so every reader sees the same conditions
echo "machine limits on the same ${mib} MiB file:"
echo "  md5sum               $(rate "$(timed md5sum "$blob")")"
echo "  sha512sum            $(rate "$(timed sha512sum "$blob")")"
echo "  md5sum+sha512sum     $(rate "$(timed both_hashes)")"
echo "  cat > /dev/null      $(rate "$(timed cat "$blob")")"
echo "  cp                   $(rate "$(timed cp "$blob" "$work/copy")")"
rm -f "$work/copy"
dd if="$blob" of="$work/cold" bs=1M oflag=direct status=none   # a copy the page cache has not seen
echo "  cat, not cached      $(rate "$(timed cat "$work/cold")")"
rm -f "$work/cold"

CLOUD_IMAGES_DATA_DIR=$work/data RUST_LOG=warn "$bin" serve --listen 127.0.0.1:0 >"$work/out" 2>"$work/err" &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
root=$(sed -n 's/^Cloud Images listening on //p' "$work/out")
key=$(sed -n 's/^ *API key: *//p' "$work/out")
token=$(curl -s "$root/v2.0/tokens" -H 'Content-Type: application/json' \
  -d "{\"auth\": {\"RAX-KSKEY:apiKeyCredentials\": {\"username\": \"admin\", \"apiKey\": \"$key\"}}}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access"]["token"]["id"])')
id=$(curl -s "$root/v2/images" -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
  -d '{"name": "bench", "disk_format": "raw", "container_format": "bare"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
idle=$(awk '/VmRSS/ {print $2}' /proc/$server/status)

upload() { curl -sS -f -T "$blob" -H "X-Auth-Token: $token" -H 'Content-Type: application/octet-stream' "$root/v2/images/$id/file"; }
download() { curl -sS -f -o /dev/null -H "X-Auth-Token: $token" "$root/v2/images/$id/file"; }
echo "cloud-images over loopback:"
echo "  upload (md5+sha512)  $(rate "$(timed upload)")"
# Uploads are written past the page cache, so the first download reads the disk.
echo "  download (disk)      $(rate "$(timed download)")"
echo "  download (cached)    $(rate "$(timed download)")"
peak=$(awk '/VmHWM/ {print $2}' /proc/$server/status)
echo "server RSS: idle $((idle / 1024)) MiB, peak $((peak / 1024)) MiB (+$(((peak - idle) / 1024)) MiB)"
curl -s "$root/v2/images/$id" -H "X-Auth-Token: $token" | python3 -c 'import json,sys; i=json.load(sys.stdin); print("image:", i["status"], i["size"], i["checksum"])'
echo "md5sum of the file:    $(md5sum "$blob" | cut -d' ' -f1)"
