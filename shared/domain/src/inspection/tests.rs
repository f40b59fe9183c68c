#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got

//! The rules across formats: declared against detected, two readings at once, QED, streaming.

use super::qcow2::tests::header as qcow2;
use super::*;

fn verdict(declared: DiskFormat, data: &[u8]) -> Result<Option<u64>, String> {
    inspect_bytes(declared, data).map_err(|e| e.to_string())
}

#[test]
fn raw_declared_but_another_format_inside_is_refused_naming_it() {
    let refused = verdict(DiskFormat::Raw, &qcow2(3, 1 << 20, 0)).unwrap_err();
    assert!(refused.contains("looks like qcow2"), "{refused}");
    let refused = verdict(DiskFormat::Qcow2, &[0u8; 1024]).unwrap_err();
    assert!(refused.contains("raw data"), "{refused}");
    assert_eq!(verdict(DiskFormat::Raw, b"hello"), Ok(Some(5)));
}

#[test]
fn qed_is_refused_whatever_is_declared() {
    let mut qed = vec![0u8; 4096];
    qed[..4].copy_from_slice(b"QED\0");
    for format in DiskFormat::ALL {
        let refused = verdict(*format, &qed).unwrap_err();
        assert!(refused.contains("QED"), "{format}: {refused}");
    }
}

#[test]
fn a_file_valid_as_two_formats_is_refused() {
    let mut both = super::iso::tests::iso(100);
    both[..512].copy_from_slice(&qcow2(3, 1 << 20, 0));
    for format in [DiskFormat::Qcow2, DiskFormat::Iso, DiskFormat::Raw] {
        let refused = verdict(format, &both).unwrap_err();
        assert!(
            refused.contains("iso") && refused.contains("qcow2"),
            "{format}: {refused}"
        );
    }
    let mut vdi_too = qcow2(3, 1 << 20, 0);
    vdi_too[0x40..0x44].copy_from_slice(&0xbeda_107fu32.to_le_bytes());
    assert!(verdict(DiskFormat::Qcow2, &vdi_too).is_err());
}

#[test]
fn an_iso_in_a_fixed_vhd_is_a_vhd_or_raw_but_not_an_iso() {
    let iso = super::iso::tests::iso(20);
    let size = iso.len() as u64;
    let vhd = [iso, super::vhd::tests::footer(2, size, u64::MAX)].concat();
    assert_eq!(verdict(DiskFormat::Vhd, &vhd), Ok(Some(size)));
    assert_eq!(verdict(DiskFormat::Raw, &vhd), Ok(Some(size + 512)));
    assert!(
        verdict(DiskFormat::Iso, &vhd)
            .unwrap_err()
            .contains("at once")
    );
}

#[test]
fn undeclared_structure_formats_still_get_every_readings_safety_checks() {
    let mut backing = qcow2(3, 1 << 20, 0);
    backing[8..16].copy_from_slice(&512u64.to_be_bytes());
    assert!(
        verdict(DiskFormat::Ami, &backing)
            .unwrap_err()
            .contains("backing")
    );
    assert_eq!(verdict(DiskFormat::Ami, &qcow2(3, 1 << 20, 0)), Ok(None));
    assert_eq!(verdict(DiskFormat::Ploop, b"anything"), Ok(None));
}

#[test]
fn the_head_alone_refuses_early() {
    let mut inspector = Inspector::new(DiskFormat::Qcow2);
    assert!(
        inspector.observe(&vec![0u8; HEAD_BYTES]).is_err(),
        "raw data, declared qcow2"
    );
    let mut raw = Inspector::new(DiskFormat::Raw);
    assert!(
        raw.observe(&vec![0u8; HEAD_BYTES]).is_ok(),
        "raw waits for the end"
    );
    let mut vhd = Inspector::new(DiskFormat::Vhd);
    assert!(
        vhd.observe(&vec![0u8; HEAD_BYTES]).is_ok(),
        "a fixed VHD shows at the end"
    );
    let mut wrong = Inspector::new(DiskFormat::Raw);
    let mut head = qcow2(3, 1 << 20, 0);
    head.resize(HEAD_BYTES, 0);
    assert!(wrong.observe(&head).is_err());
}

#[test]
fn memory_stays_bounded_whatever_the_size() {
    let mut inspector = Inspector::new(DiskFormat::Raw);
    let block = vec![7u8; 1 << 20];
    for _ in 0..64 {
        inspector.observe(&block).unwrap();
    }
    assert!(inspector.retained() <= HEAD_BYTES + TAIL_BYTES + REGION_BYTES);
    assert_eq!(inspector.finish().ok(), Some(Some(64 << 20)));
}

#[test]
fn the_head_and_the_tail_keep_only_the_ends_however_the_data_arrives() {
    let data: Vec<u8> = (0..(HEAD_BYTES as u32 + 200_000))
        .map(|i| (i % 251) as u8)
        .collect();
    for piece in [1, 7000, 1 << 20] {
        let mut inspector = Inspector::new(DiskFormat::Raw);
        for chunk in data.chunks(piece) {
            inspector.observe(chunk).unwrap();
        }
        assert_eq!(inspector.head, data[..HEAD_BYTES], "pieces of {piece}");
        assert_eq!(
            inspector.tail,
            data[data.len() - TAIL_BYTES..],
            "pieces of {piece}"
        );
    }
    let mut small = Inspector::new(DiskFormat::Raw);
    small.observe(b"abc").unwrap();
    small.observe(b"def").unwrap();
    assert_eq!(
        (small.head.as_slice(), small.tail.as_slice()),
        (&b"abcdef"[..], &b"abcdef"[..])
    );
}

#[test]
fn an_encrypted_volume_is_no_raw_disk() {
    let mut luks = vec![0u8; 4096];
    luks[..6].copy_from_slice(b"LUKS\xba\xbe");
    luks[6..8].copy_from_slice(&1u16.to_be_bytes());
    assert!(
        verdict(DiskFormat::Raw, &luks)
            .unwrap_err()
            .contains("looks like luks")
    );
    luks[7] = 2;
    assert!(
        verdict(DiskFormat::Raw, &luks)
            .unwrap_err()
            .contains("version 2")
    );
}
