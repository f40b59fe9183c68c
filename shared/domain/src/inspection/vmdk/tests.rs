#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got

use super::super::inspect_bytes;
use super::*;
use crate::image::DiskFormat;

/// A sparse VMDK as qemu-img writes it: header, descriptor at sector 1, room for grains.
pub(crate) fn sparse_vmdk(descriptor: &str, gd_offset: u64) -> Vec<u8> {
    let mut h = vec![0u8; 64 * 1024];
    h[..4].copy_from_slice(SPARSE_MAGIC);
    h[4..8].copy_from_slice(&1u32.to_le_bytes());
    h[12..20].copy_from_slice(&2048u64.to_le_bytes());
    h[20..28].copy_from_slice(&128u64.to_le_bytes());
    h[28..36].copy_from_slice(&1u64.to_le_bytes());
    h[36..44].copy_from_slice(&20u64.to_le_bytes());
    h[44..48].copy_from_slice(&512u32.to_le_bytes());
    h[56..64].copy_from_slice(&gd_offset.to_le_bytes());
    h[512..512 + descriptor.len()].copy_from_slice(descriptor.as_bytes());
    h
}

pub(crate) fn descriptor(create_type: &str, extents: &str, extra: &str) -> String {
    format!(
        "# Disk DescriptorFile\nversion=1\nCID=19d1536a\nparentCID=ffffffff\n{extra}\
         createType=\"{create_type}\"\n\n# Extent description\n{extents}\n\n# The Disk Data Base\n\
         #DDB\nddb.adapterType = \"ide\"\n"
    )
}

const OWN_EXTENT: &str = "RW 2048 SPARSE \"disk.vmdk\"";

/// A streamOptimized VMDK whose header defers the grain directory to a footer.
pub(crate) fn footed(tweak_footer: impl Fn(&mut [u8])) -> Vec<u8> {
    let mut data = sparse_vmdk(&descriptor("streamOptimized", OWN_EXTENT, ""), GD_AT_END);
    let mut marker = vec![0u8; 512];
    marker[12..16].copy_from_slice(&MARKER_FOOTER.to_le_bytes());
    let mut footer = data[..512].to_vec();
    footer[56..64].copy_from_slice(&130u64.to_le_bytes());
    tweak_footer(&mut footer);
    data.extend_from_slice(&marker);
    data.extend_from_slice(&footer);
    data.extend_from_slice(&[0u8; 512]);
    data
}

fn verdict(data: &[u8]) -> Result<Option<u64>, String> {
    inspect_bytes(DiskFormat::Vmdk, data).map_err(|e| e.to_string())
}

#[test]
fn monolithic_sparse_and_stream_optimized_with_their_own_extent_are_accepted() {
    for create_type in CREATE_TYPES {
        let data = sparse_vmdk(&descriptor(create_type, OWN_EXTENT, ""), 21);
        assert_eq!(verdict(&data), Ok(Some(2048 * 512)), "{create_type}");
    }
    let mut bare = sparse_vmdk("", 21);
    bare[28..44].fill(0);
    assert_eq!(
        verdict(&bare),
        Ok(Some(2048 * 512)),
        "a sparse extent without descriptor"
    );
}

#[test]
fn descriptors_naming_other_files_are_refused() {
    let cases = [
        (
            descriptor(
                "monolithicSparse",
                OWN_EXTENT,
                "parentFileNameHint=\"/var/lib/base.vmdk\"\n",
            ),
            "parentFileNameHint",
        ),
        (
            descriptor("monolithicSparse", OWN_EXTENT, "")
                .replace("parentCID=ffffffff", "parentCID=12345678"),
            "parentCID",
        ),
        (
            descriptor("monolithicSparse", "RW 2048 SPARSE \"/etc/passwd\"", ""),
            "/etc/passwd",
        ),
        (
            descriptor("monolithicSparse", "RW 2048 SPARSE \"/dev/sda\"", ""),
            "/dev/sda",
        ),
        (
            descriptor("monolithicSparse", "RW 2048 SPARSE \"../other.vmdk\"", ""),
            "../other.vmdk",
        ),
        (
            descriptor("monolithicSparse", "RW 2048 SPARSE \"C:\\\\disk.vmdk\"", ""),
            "path",
        ),
        (
            descriptor(
                "monolithicSparse",
                &format!("{OWN_EXTENT}\nRW 2048 SPARSE \"second.vmdk\""),
                "",
            ),
            "second extent",
        ),
        (descriptor("monolithicSparse", "", ""), "no extents"),
        (
            descriptor("monolithicSparse", "RX 2048 SPARSE \"disk.vmdk\"", ""),
            "unknown extent",
        ),
        (
            descriptor("monolithicSparse", "RW 2048 WEIRD \"disk.vmdk\"", ""),
            "invalid extent",
        ),
        (
            descriptor("monolithicSparse", "RW 2048 FLAT \"disk.vmdk\"", ""),
            "not its own sparse",
        ),
        (
            descriptor("monolithicFlat", OWN_EXTENT, ""),
            "monolithicFlat",
        ),
        (
            descriptor("twoGbMaxExtentSparse", OWN_EXTENT, ""),
            "twoGbMaxExtentSparse",
        ),
        (descriptor("vmfs", OWN_EXTENT, ""), "vmfs"),
    ];
    for (text, says) in cases {
        let refused = verdict(&sparse_vmdk(&text, 21)).expect_err(says);
        assert!(refused.contains(says), "{says}: {refused}");
    }
}

#[test]
fn a_standalone_descriptor_is_refused_naming_why() {
    let flat = descriptor("monolithicFlat", "RW 2048 FLAT \"/etc/shadow\" 0", "");
    let refused = verdict(flat.as_bytes()).unwrap_err();
    assert!(
        refused.contains("descriptor file") && refused.contains("/etc/shadow"),
        "{refused}"
    );
    let plain = descriptor("monolithicSparse", OWN_EXTENT, "");
    assert!(
        verdict(plain.as_bytes())
            .unwrap_err()
            .contains("descriptor file")
    );
    let raw = inspect_bytes(DiskFormat::Raw, flat.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(raw.contains("VMDK"), "raw data that is a descriptor: {raw}");
    assert!(
        verdict(b"COWD\x01\x00\x00\x00")
            .unwrap_err()
            .contains("COWD")
    );
}

#[test]
fn a_stream_optimized_footer_must_agree_with_its_header() {
    assert_eq!(verdict(&footed(|_| {})), Ok(Some(2048 * 512)));
    let zeroed = footed(|f| f.fill(0));
    assert!(verdict(&zeroed).unwrap_err().contains("no valid footer"));
    let other_capacity = footed(|f| f[12..20].copy_from_slice(&4096u64.to_le_bytes()));
    assert!(
        verdict(&other_capacity)
            .unwrap_err()
            .contains("contradicts")
    );
    let still_at_end = footed(|f| f[56..64].copy_from_slice(&GD_AT_END.to_le_bytes()));
    assert!(verdict(&still_at_end).unwrap_err().contains("contradicts"));
    let beyond = footed(|f| f[56..64].copy_from_slice(&(1u64 << 40).to_le_bytes()));
    assert!(verdict(&beyond).unwrap_err().contains("contradicts"));
    let mut cut = footed(|_| {});
    cut.truncate(cut.len() - 512);
    assert!(verdict(&cut).is_err(), "no end-of-stream marker");
    let sparse = sparse_vmdk(&descriptor("monolithicSparse", OWN_EXTENT, ""), GD_AT_END);
    assert!(verdict(&sparse).unwrap_err().contains("footer"));
}

#[test]
fn bad_headers_are_refused_not_guessed() {
    let good = sparse_vmdk(&descriptor("monolithicSparse", OWN_EXTENT, ""), 21);
    for len in [4, 100, 511, 600] {
        assert!(verdict(&good[..len]).is_err(), "{len} bytes");
    }
    let mut grain = good.clone();
    grain[20..28].copy_from_slice(&3u64.to_le_bytes());
    assert!(verdict(&grain).unwrap_err().contains("grain"));
    let mut capacity = good.clone();
    capacity[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(verdict(&capacity).unwrap_err().contains("overflows"));
    let mut far = good;
    far[28..36].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(verdict(&far).unwrap_err().contains("outside"));
}
