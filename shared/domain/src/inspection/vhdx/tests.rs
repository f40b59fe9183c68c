#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got

use super::super::{Inspector, inspect_bytes};
use super::*;
use crate::image::DiskFormat;

fn seal(block: &mut [u8]) {
    block[4..8].fill(0);
    let sum = CRC32C.checksum(block);
    block[4..8].copy_from_slice(&sum.to_le_bytes());
}

/// (item, value, flags) for the metadata region.
type Item = ([u8; 16], Vec<u8>, u32);

pub(crate) fn standard_items(size: u64, file_flags: u32) -> Vec<Item> {
    let mut parameters = (32u32 << 20).to_le_bytes().to_vec();
    parameters.extend_from_slice(&file_flags.to_le_bytes());
    vec![
        (FILE_PARAMETERS, parameters, ITEM_REQUIRED),
        (
            VIRTUAL_DISK_SIZE,
            size.to_le_bytes().to_vec(),
            ITEM_REQUIRED | 2,
        ),
        (
            HARMLESS_ITEMS[0],
            512u32.to_le_bytes().to_vec(),
            ITEM_REQUIRED | 2,
        ),
    ]
}

/// A VHDX of 3 MiB: header section, metadata region at 1 MiB, BAT at 2 MiB.
pub(crate) fn vhdx(items: &[Item], tweak: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut d = vec![0u8; 3 << 20];
    d[..8].copy_from_slice(SIGNATURE);
    for (n, at) in HEADERS.into_iter().enumerate() {
        let h = &mut d[at..at + HEADER_BYTES];
        h[..4].copy_from_slice(b"head");
        h[8..16].copy_from_slice(&(n as u64 + 1).to_le_bytes());
        h[66..68].copy_from_slice(&1u16.to_le_bytes());
        seal(h);
    }
    for at in REGION_TABLES {
        let t = &mut d[at..at + TABLE_BYTES];
        t[..4].copy_from_slice(b"regi");
        t[8..12].copy_from_slice(&2u32.to_le_bytes());
        for (n, (id, offset)) in [(METADATA, 1u64 << 20), (BAT, 2 << 20)]
            .into_iter()
            .enumerate()
        {
            let e = &mut t[16 + n * 32..48 + n * 32];
            e[..16].copy_from_slice(&id);
            e[16..24].copy_from_slice(&offset.to_le_bytes());
            e[24..28].copy_from_slice(&(1u32 << 20).to_le_bytes());
            e[28..32].copy_from_slice(&1u32.to_le_bytes());
        }
        seal(t);
    }
    let m = &mut d[1 << 20..2 << 20];
    m[..8].copy_from_slice(b"metadata");
    m[10..12].copy_from_slice(&(items.len() as u16).to_le_bytes());
    let mut next = TABLE_BYTES;
    for (n, (id, value, flags)) in items.iter().enumerate() {
        let e = &mut m[32 + n * 32..64 + n * 32];
        e[..16].copy_from_slice(id);
        e[16..20].copy_from_slice(&(next as u32).to_le_bytes());
        e[20..24].copy_from_slice(&(value.len() as u32).to_le_bytes());
        e[24..28].copy_from_slice(&flags.to_le_bytes());
        m[next..next + value.len()].copy_from_slice(value);
        next += 4096;
    }
    tweak(&mut d);
    d
}

fn verdict(data: &[u8]) -> Result<Option<u64>, String> {
    inspect_bytes(DiskFormat::Vhdx, data).map_err(|e| e.to_string())
}

#[test]
fn a_standalone_vhdx_gives_its_virtual_size_from_the_metadata_region() {
    let data = vhdx(&standard_items(64 << 30, 0), |_| {});
    assert_eq!(verdict(&data), Ok(Some(64 << 30)));
    // Streamed in blocks that straddle the head and the metadata region alike.
    for block in [4096, 65_536, 1 << 20, 3 << 20] {
        let mut inspector = Inspector::new(DiskFormat::Vhdx);
        for chunk in data.chunks(block) {
            inspector.observe(chunk).unwrap();
        }
        assert_eq!(
            inspector.finish().ok(),
            Some(Some(64 << 30)),
            "blocks of {block}"
        );
    }
}

#[test]
fn a_parent_is_refused_by_flag_or_locator() {
    let flagged = vhdx(&standard_items(1 << 30, HAS_PARENT), |_| {});
    assert!(verdict(&flagged).unwrap_err().contains("parent"));
    let mut items = standard_items(1 << 30, 0);
    items.push((PARENT_LOCATOR, vec![1; 64], ITEM_REQUIRED));
    assert!(
        verdict(&vhdx(&items, |_| {}))
            .unwrap_err()
            .contains("parent")
    );
}

#[test]
fn damaged_tables_are_refused() {
    let items = standard_items(1 << 30, 0);
    let bad_headers = vhdx(&items, |d| {
        d[HEADERS[0] + 100] ^= 1;
        d[HEADERS[1] + 100] ^= 1;
    });
    assert!(
        verdict(&bad_headers)
            .unwrap_err()
            .contains("no valid header")
    );
    let one_bad_table = vhdx(&items, |d| d[REGION_TABLES[0] + 200] ^= 1);
    assert_eq!(
        verdict(&one_bad_table),
        Ok(Some(1 << 30)),
        "the second table serves"
    );
    let bad_tables = vhdx(&items, |d| {
        d[REGION_TABLES[0] + 200] ^= 1;
        d[REGION_TABLES[1] + 200] ^= 1;
    });
    assert!(verdict(&bad_tables).unwrap_err().contains("region table"));
    let no_size = vhdx(&items[..1], |_| {});
    assert!(verdict(&no_size).unwrap_err().contains("virtual size"));
    let mut unknown = items.clone();
    unknown.push(([7; 16], vec![0; 8], ITEM_REQUIRED));
    assert!(
        verdict(&vhdx(&unknown, |_| {}))
            .unwrap_err()
            .contains("unknown required")
    );
    let outside = vhdx(&items, |d| {
        let entry = (1 << 20) + 32 + 16;
        d[entry..entry + 4].copy_from_slice(&(2u32 << 20).to_le_bytes());
    });
    assert!(verdict(&outside).unwrap_err().contains("outside"));
    let no_signature = vhdx(&items, |d| d[1 << 20] = b'X');
    assert!(
        verdict(&no_signature)
            .unwrap_err()
            .contains("metadata table")
    );
}

#[test]
fn truncated_files_are_refused() {
    let data = vhdx(&standard_items(1 << 30, 0), |_| {});
    for len in [
        8,
        4096,
        0x4_0000,
        0x5_0000,
        1 << 20,
        (1 << 20) + 100,
        (2 << 20) + 5,
    ] {
        assert!(verdict(&data[..len]).is_err(), "{len} bytes");
    }
    let mut many = data.clone();
    many[REGION_TABLES[0] + 8..REGION_TABLES[0] + 12].copy_from_slice(&5000u32.to_le_bytes());
    seal(&mut many[REGION_TABLES[0]..REGION_TABLES[0] + TABLE_BYTES]);
    assert!(verdict(&many).unwrap_err().contains("5000 entries"));
}
