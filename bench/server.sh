# Sourced by the wrk benchmarks: wrk installed, the release binary built, and a fresh server
# on the embedded default per measurement. Sets $bin and $work; start_server sets $root.
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --locked --release -p cloud-images >/dev/null
bin=target/release/cloud-images
work=$(mktemp -d)
server=
trap 'stop_server; rm -rf "$work"' EXIT

start_server() {
  rm -rf "$work/data" "$work/out"
  CLOUD_IMAGES_DATA_DIR=$work/data RUST_LOG=warn "$bin" serve --listen 127.0.0.1:0 >"$work/out" 2>"$work/err" &
  server=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
  root=$(sed -n 's/^Cloud Images listening on //p' "$work/out")
}

stop_server() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  server=
}
