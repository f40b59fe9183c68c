#!/usr/bin/env python3
"""Builds the adversarial disk-image corpus that tests/corpus/cases.json describes.

    python3 tests/corpus/make_corpus.py OUT_DIR

Each case of cases.json names a file; this script makes it in OUT_DIR with qemu-img where
qemu-img can (standalone images, backing and data files, descriptor VMDKs, QED) and with the
small writers below where it can't (differencing VHDs, parents in VHDX metadata, VMDK
descriptors naming host files, streamOptimized footers, polyglots, partition tables). The
advisories behind the cases: OSSA-2015-014 (backing files), OSSA-2016-012 (resource
exhaustion), OSSA-2023-002 (VMDK descriptors naming host files), OSSA-2024-001 (qcow2 data
files)."""

import json
import os
import pathlib
import struct
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
MIB = 1024 * 1024


def qemu_img(out, *args):
    subprocess.run(["qemu-img", *args], cwd=out, check=True, capture_output=True)


def read(out, name):
    return bytearray((out / name).read_bytes())


def sealed_vhd(block, field):
    """A VHD footer or dynamic header with its one's-complement checksum recomputed."""
    block[field:field + 4] = b"\0\0\0\0"
    block[field:field + 4] = struct.pack(">I", ~sum(block) & 0xFFFFFFFF)
    return block


def vmdk_with_descriptor(out, name, create_type, extents, extra=""):
    """qemu-img's monolithicSparse VMDK with its embedded descriptor rewritten."""
    qemu_img(out, "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse", name, "64M")
    data = read(out, name)
    offset, sectors = struct.unpack_from("<QQ", data, 28)
    text = (f"# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n{extra}"
            f'createType="{create_type}"\n\n# Extent description\n{extents}\n\n'
            '# The Disk Data Base\n#DDB\n\nddb.adapterType = "ide"\n').encode()
    region = sectors * 512
    assert len(text) <= region, "descriptor too long"
    data[offset * 512:offset * 512 + region] = text.ljust(region, b"\0")
    return data


def vmdk_footer(out, name, tweak=lambda footer: None):
    """A streamOptimized VMDK whose header defers the grain directory to a footer."""
    qemu_img(out, "create", "-q", "-f", "vmdk", "-o", "subformat=streamOptimized", name, "16G")
    data = read(out, name)
    footer = bytearray(data[:512])
    tweak(footer)
    struct.pack_into("<Q", data, 56, 0xFFFFFFFFFFFFFFFF)
    marker = bytearray(512)
    struct.pack_into("<QII", marker, 0, 0, 0, 3)
    return data + marker + footer + bytes(512)


def vhd_dynamic(out, name, footer_types=(3, 3), locator=False):
    """qemu-img's dynamic VHD with the disk type of the start and end footers set, and
    optionally a parent locator entry in the dynamic header."""
    qemu_img(out, "create", "-q", "-f", "vpc", name, "64M")
    data = read(out, name)
    for at, disk_type in zip((0, len(data) - 512), footer_types):
        footer = bytearray(data[at:at + 512])
        struct.pack_into(">I", footer, 60, disk_type)
        data[at:at + 512] = sealed_vhd(footer, 64)
    if locator:
        header_at = struct.unpack_from(">Q", data, 16)[0]
        header = bytearray(data[header_at:header_at + 1024])
        header[576:580] = b"W2ku"
        struct.pack_into(">IIIQ", header, 580, 512, 24, 0, 0x10000)
        header[64:64 + 24] = "/etc/passwd".encode("utf-16-be").ljust(24, b"\0")
        data[header_at:header_at + 1024] = sealed_vhd(header, 36)
    return data


def vhdx_metadata_patch(out, name, patch):
    """qemu-img's VHDX with `patch(region, entries)` applied to its metadata region."""
    qemu_img(out, "create", "-q", "-f", "vhdx", name, "64M")
    data = read(out, name)
    count = struct.unpack_from("<I", data, 0x30008)[0]
    for n in range(count):
        guid, offset, length, _ = struct.unpack_from("<16sQII", data, 0x30010 + 32 * n)
        if guid == bytes.fromhex("06a27c8b90479a4bb8fe575f050f886e"):
            region = data[offset:offset + length]
            patch(region)
            data[offset:offset + length] = region
    return data


FILE_PARAMETERS = bytes.fromhex("3767a1ca36fa434db3b633f0aa44e76b")


def has_parent(region):
    count = struct.unpack_from("<H", region, 10)[0]
    for n in range(count):
        guid, offset, _, _ = struct.unpack_from("<16sIII", region, 32 + 32 * n)
        if guid == FILE_PARAMETERS:
            flags = struct.unpack_from("<I", region, offset + 4)[0]
            struct.pack_into("<I", region, offset + 4, flags | 2)


def iso(blocks=64, disagree=False):
    """A minimal ISO 9660 image: system area, primary descriptor, terminator."""
    data = bytearray(blocks * 2048)
    pvd = bytearray(2048)
    pvd[0], pvd[1:6], pvd[6] = 1, b"CD001", 1
    struct.pack_into("<I", pvd, 80, blocks)
    struct.pack_into(">I", pvd, 84, blocks + (1 if disagree else 0))
    struct.pack_into("<H", pvd, 128, 2048)
    struct.pack_into(">H", pvd, 130, 2048)
    data[0x8000:0x8800] = pvd
    data[0x8800], data[0x8801:0x8806], data[0x8806] = 255, b"CD001", 1
    return data


def fixed_vhd_footer(size):
    footer = bytearray(512)
    footer[0:8] = b"conectix"
    struct.pack_into(">IIQ", footer, 8, 2, 0x10000, 0xFFFFFFFFFFFFFFFF)
    struct.pack_into(">QQ", footer, 40, size, size)
    struct.pack_into(">I", footer, 60, 2)
    return sealed_vhd(footer, 64)


def mbr(entries, size=MIB, protective_lba=1):
    """Random sectors behind a partition table of (boot flag, type) entries; a 0xEE entry is
    written as a protective MBR writes it (CHS 0/2/0, LBA `protective_lba`)."""
    data = bytearray(os.urandom(size))
    data[446:510] = bytes(64)
    for n, (boot, kind) in enumerate(entries):
        data[446 + 16 * n] = boot
        data[446 + 16 * n + 4] = kind
        if kind == 0xEE:
            data[446 + 16 * n + 1:446 + 16 * n + 4] = b"\x00\x02\x00"
            struct.pack_into("<I", data, 446 + 16 * n + 8, protective_lba)
    data[510:512] = b"\x55\xaa"
    return data


def random_raw(size):
    """Random bytes that are not, by chance, an MBR (the signature's two bytes cleared)."""
    data = bytearray(os.urandom(size))
    data[510:512] = b"\0\0"
    return data


def qcow2_patched(out, name, at, mask):
    qemu_img(out, "create", "-q", "-f", "qcow2", name, "64M")
    data = read(out, name)
    data[at] |= mask
    return data


def build(out):
    """name → bytes (or None when qemu-img wrote the file itself)."""
    qemu = lambda *args: qemu_img(out, *args)  # noqa: E731
    (out / "base.raw").write_bytes(os.urandom(MIB))
    (out / "host.raw").write_bytes(b"")
    made = {}

    def via_qemu(name, *args):
        qemu(*args)
        made[name] = None

    via_qemu("plain.qcow2", "create", "-q", "-f", "qcow2", "plain.qcow2", "64M")
    via_qemu("v2.qcow2", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "v2.qcow2", "1G")
    via_qemu("huge.qcow2", "create", "-q", "-f", "qcow2", "huge.qcow2", "4T")
    via_qemu("backing.qcow2", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "backing.qcow2")
    via_qemu("data-file.qcow2", "create", "-q", "-f", "qcow2", "-o", "data_file=host.raw", "data-file.qcow2", "64M")
    made["unknown-feature.qcow2"] = qcow2_patched(out, "unknown-feature.qcow2", 79, 0x20)
    made["corrupt.qcow2"] = qcow2_patched(out, "corrupt.qcow2", 79, 0x02)
    overflow = qcow2_patched(out, "overflow.qcow2", 79, 0)
    struct.pack_into(">Q", overflow, 24, 1 << 62)
    made["overflow.qcow2"] = overflow
    made["truncated.qcow2"] = read(out, "plain.qcow2")[:50]
    via_qemu("disk.qed", "create", "-q", "-f", "qed", "disk.qed", "1G")

    via_qemu("sparse.vmdk", "create", "-q", "-f", "vmdk", "sparse.vmdk", "64M")
    (out / "stream-src.raw").write_bytes(os.urandom(2 * MIB))
    via_qemu("stream.vmdk", "convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
             "stream-src.raw", "stream.vmdk")
    made["footer.vmdk"] = vmdk_footer(out, "footer.vmdk")
    made["zero-footer.vmdk"] = vmdk_footer(out, "zero-footer.vmdk", lambda f: f.__setitem__(slice(0, 512), bytes(512)))
    made["contradicting-footer.vmdk"] = vmdk_footer(
        out, "contradicting-footer.vmdk", lambda f: struct.pack_into("<Q", f, 12, 1 << 20))
    via_qemu("flat.vmdk", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", "flat.vmdk", "8M")
    via_qemu("split.vmdk", "create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", "split.vmdk", "8M")
    own = 'RW 131072 SPARSE "own.vmdk"'
    made["host-path.vmdk"] = vmdk_with_descriptor(out, "host-path.vmdk", "monolithicSparse",
                                                  'RW 131072 FLAT "/etc/passwd" 0')
    made["device-path.vmdk"] = vmdk_with_descriptor(out, "device-path.vmdk", "monolithicSparse",
                                                    'RW 131072 SPARSE "/dev/sda"')
    made["parent-hint.vmdk"] = vmdk_with_descriptor(out, "parent-hint.vmdk", "monolithicSparse", own,
                                                    'parentFileNameHint="/var/lib/images/base.vmdk"\n')
    made["parent-cid.vmdk"] = vmdk_with_descriptor(out, "parent-cid.vmdk", "monolithicSparse", own).replace(
        b"parentCID=ffffffff", b"parentCID=1234abcd")
    made["two-extents.vmdk"] = vmdk_with_descriptor(out, "two-extents.vmdk", "monolithicSparse",
                                                    own + '\nRW 131072 SPARSE "second.vmdk"')
    made["no-extents.vmdk"] = vmdk_with_descriptor(out, "no-extents.vmdk", "monolithicSparse", "")
    made["bad-access.vmdk"] = vmdk_with_descriptor(out, "bad-access.vmdk", "monolithicSparse",
                                                   'RX 131072 SPARSE "own.vmdk"')
    made["flat-type.vmdk"] = vmdk_with_descriptor(out, "flat-type.vmdk", "monolithicFlat", own)
    made["descriptor-only.vmdk"] = (
        '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 2048 FLAT "/etc/shadow" 0\n').encode()

    (out / "fixed-src.raw").write_bytes(os.urandom(8 * MIB))
    via_qemu("fixed.vhd", "convert", "-q", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on",
             "fixed-src.raw", "fixed.vhd")
    via_qemu("dynamic.vhd", "create", "-q", "-f", "vpc", "dynamic.vhd", "64M")
    made["differencing.vhd"] = vhd_dynamic(out, "differencing.vhd", (4, 4), locator=True)
    made["differencing-end.vhd"] = vhd_dynamic(out, "differencing-end.vhd", (3, 4))
    made["differencing-start.vhd"] = vhd_dynamic(out, "differencing-start.vhd", (4, 3))
    made["parent-locator.vhd"] = vhd_dynamic(out, "parent-locator.vhd", locator=True)
    made["no-end-footer.vhd"] = vhd_dynamic(out, "no-end-footer.vhd")[:-512]

    via_qemu("disk.vhdx", "create", "-q", "-f", "vhdx", "disk.vhdx", "64M")
    made["has-parent.vhdx"] = vhdx_metadata_patch(out, "has-parent.vhdx", has_parent)
    bad = read(out, "disk.vhdx")
    bad[0x30000 + 100] ^= 1
    bad[0x40000 + 100] ^= 1
    made["bad-checksum.vhdx"] = bad
    made["truncated.vhdx"] = read(out, "disk.vhdx")[:300 * 1024]

    via_qemu("disk.vdi", "create", "-q", "-f", "vdi", "disk.vdi", "64M")
    vdi = read(out, "disk.vdi")
    struct.pack_into("<I", vdi, 0x4C, 4)
    made["differencing.vdi"] = vdi

    made["disk.iso"] = iso()
    made["bad-pvd.iso"] = iso(disagree=True)
    polyglot = iso()
    polyglot[:512] = read(out, "plain.qcow2")[:512]
    made["qcow2-in-iso.iso"] = polyglot
    made["iso-in-fixed.vhd"] = iso() + fixed_vhd_footer(64 * 2048)

    made["random.raw"] = random_raw(MIB + 7)
    made["qcow2-header.raw"] = read(out, "plain.qcow2")
    made["mbr.raw"] = mbr([(0x80, 0x83), (0, 0x82)])
    made["bad-boot-flag.raw"] = mbr([(0x81, 0x83)])
    made["gpt.raw"] = mbr([(0, 0xEE)])
    made["gpt-extra.raw"] = mbr([(0, 0xEE), (0, 0x83)])
    made["gpt-bad-lba.raw"] = mbr([(0, 0xEE)], protective_lba=2)
    made["empty-table.raw"] = mbr([])
    fat = mbr([])
    fat[0x10], fat[0x15] = 2, 0xF8
    made["fat-volume.raw"] = fat

    for name, data in made.items():
        if data is not None:
            (out / name).write_bytes(bytes(data))
    return made


def main():
    out = pathlib.Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    made = build(out)
    cases = json.loads((HERE / "cases.json").read_text())["cases"]
    missing = {c["file"] for c in cases} - set(made)
    unused = set(made) - {c["file"] for c in cases}
    if missing or unused:
        sys.exit(f"cases.json and make_corpus.py disagree: missing {sorted(missing)}, unused {sorted(unused)}")
    print(f"{len(made)} files for {len(cases)} cases in {out}")


if __name__ == "__main__":
    main()
