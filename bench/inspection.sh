#!/usr/bin/env bash
# Format inspection cost against virtual size: qcow2 of 64 MiB to 4 TiB, streamOptimized
# VMDK of 2 MiB to 16 GiB (grain directory in a footer), VHDX of 64 MiB to 64 TiB, and a
# 1 GiB raw stream; each printed with the bytes the inspector held and the time per run.
# The cost must not grow with the virtual size (it reads at most the first 320 KiB, the last
# 4 KiB and 1 MiB of a VHDX metadata region). Needs qemu-img and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 tests/corpus/make_corpus.py "$dir/corpus" >/dev/null
for size in 64M 1T 4T; do qemu-img create -q -f qcow2 "$dir/q-$size.qcow2" "$size"; done
for size in 64M 1T 64T; do qemu-img create -q -f vhdx "$dir/x-$size.vhdx" "$size"; done
head -c 1G /dev/zero >"$dir/one.raw"
cargo build --release --quiet -p cloud-images-domain --example inspect
target/release/examples/inspect \
  "qcow2:$dir/q-64M.qcow2" "qcow2:$dir/q-1T.qcow2" "qcow2:$dir/q-4T.qcow2" \
  "vmdk:$dir/corpus/stream.vmdk" "vmdk:$dir/corpus/footer.vmdk" \
  "vhdx:$dir/x-64M.vhdx" "vhdx:$dir/x-1T.vhdx" "vhdx:$dir/x-64T.vhdx" \
  "vhd:$dir/corpus/dynamic.vhd" "vhd:$dir/corpus/fixed.vhd" "raw:$dir/one.raw" \
  "vmdk:$dir/corpus/host-path.vmdk" "qcow2:$dir/corpus/backing.qcow2"
