//! VHDX (Microsoft's VHDX Format Specification 1.0): a file identifier, two headers at 64
//! and 128 KiB, two region tables at 192 and 256 KiB (CRC-32C checksummed), and a metadata
//! region the tables point at, whose items give the virtual size and say whether the disk
//! has a parent. Refused: a parent (the `HasParent` flag or a parent locator item), bad
//! signatures or checksums, entry counts and offsets out of range, unknown required regions
//! or items, and files truncated before their metadata.

use super::bytes::{index, le16, le32, le64, slice};
use super::{Refusal, Sample};

pub(super) const SIGNATURE: &[u8] = b"vhdxfile";
const HEADERS: [usize; 2] = [0x1_0000, 0x2_0000];
const HEADER_BYTES: usize = 4096;
const REGION_TABLES: [usize; 2] = [0x3_0000, 0x4_0000];
const TABLE_BYTES: usize = 64 * 1024;
const MAX_ENTRIES: usize = 2047;
const MIB: u64 = 1024 * 1024;

/// A GUID as the specification stores it: the first three fields little-endian.
const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let (a, b, c) = (a.to_le_bytes(), b.to_le_bytes(), c.to_le_bytes());
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

const BAT: [u8; 16] = guid(
    0x2DC2_7766,
    0xF623,
    0x4200,
    [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08],
);
const METADATA: [u8; 16] = guid(
    0x8B7C_A206,
    0x4790,
    0x4B9A,
    [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E],
);
const FILE_PARAMETERS: [u8; 16] = guid(
    0xCAA1_6737,
    0xFA36,
    0x4D43,
    [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B],
);
const VIRTUAL_DISK_SIZE: [u8; 16] = guid(
    0x2FA5_4224,
    0xCD1B,
    0x4876,
    [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8],
);
const PARENT_LOCATOR: [u8; 16] = guid(
    0xA8D3_5F2D,
    0xB30B,
    0x454D,
    [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C],
);
/// Items a standalone disk may carry that need no checks here.
const HARMLESS_ITEMS: [[u8; 16]; 3] = [
    guid(
        0x8141_BF1D,
        0xA96F,
        0x4709,
        [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F],
    ),
    guid(
        0xCDA3_48C7,
        0x445D,
        0x4471,
        [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
    ),
    guid(
        0xBECA_12AB,
        0xB2E6,
        0x4523,
        [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
    ),
];
const HAS_PARENT: u32 = 1 << 1;
const ITEM_REQUIRED: u32 = 1 << 2;

const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// Whether a checksummed structure's CRC-32C (taken with its checksum field as zero) holds.
fn crc_holds(block: &[u8]) -> bool {
    let mut digest = CRC32C.digest();
    digest.update(&block[..4]);
    digest.update(&[0; 4]);
    digest.update(&block[8..]);
    le32(block, 4) == Some(digest.finalize())
}

fn signed<'a>(head: &'a [u8], at: usize, len: usize, signature: &[u8]) -> Option<&'a [u8]> {
    slice(head, at, len).filter(|b| b.starts_with(signature) && crc_holds(b))
}

/// A region table entry: where its region lies and whether a reader must understand it.
struct Region {
    id: [u8; 16],
    offset: u64,
    length: u64,
    required: bool,
}

/// The entries of the first region table that passes its checks.
fn regions(head: &[u8]) -> Result<Vec<Region>, Refusal> {
    let table = REGION_TABLES
        .iter()
        .find_map(|&at| signed(head, at, TABLE_BYTES, b"regi"))
        .ok_or("The VHDX has no valid region table")?;
    let count = le32(table, 8)
        .and_then(|n| index(n.into()))
        .unwrap_or(usize::MAX);
    if count > MAX_ENTRIES {
        return Err(format!("The VHDX region table has {count} entries"));
    }
    Ok((0..count)
        .filter_map(|n| slice(table, 16 + n * 32, 32))
        .map(|e| Region {
            id: e[..16].try_into().unwrap_or([0; 16]),
            offset: le64(e, 16).unwrap_or(0),
            length: u64::from(le32(e, 24).unwrap_or(0)),
            required: le32(e, 28).unwrap_or(0) & 1 != 0,
        })
        .collect())
}

/// Where the metadata region lies, for the inspector to keep it as it streams past.
pub(super) fn metadata_region(head: &[u8]) -> Option<(u64, usize)> {
    let metadata = regions(head).ok()?.into_iter().find(|r| r.id == METADATA)?;
    Some((metadata.offset, index(metadata.length)?))
}

pub(super) fn inspect(s: &Sample) -> Result<Option<u64>, Refusal> {
    let truncated = || "The VHDX is truncated before its region tables".to_owned();
    if s.head.len() < REGION_TABLES[1] + TABLE_BYTES {
        return Err(truncated());
    }
    header(s.head)?;
    let regions = regions(s.head)?;
    let mut metadata = None;
    for region in &regions {
        let aligned = region.offset >= MIB && region.offset % MIB == 0 && region.length % MIB == 0;
        if !aligned || region.length == 0 {
            return Err("The VHDX region table has a region out of range".into());
        }
        if s.total
            .is_some_and(|total| region.offset.saturating_add(region.length) > total)
        {
            return Err("The VHDX is truncated: a region lies beyond its end".into());
        }
        match region.id {
            METADATA => metadata = Some(region),
            BAT => {}
            _ if region.required => return Err("The VHDX has an unknown required region".into()),
            _ => {}
        }
    }
    let metadata = metadata.ok_or("The VHDX has no metadata region")?;
    match s.region {
        Some((offset, data)) if offset == metadata.offset => items(data, metadata.length),
        // The stream has not reached the metadata yet.
        _ if s.total.is_none() => Ok(None),
        _ => Err("The VHDX metadata region could not be read".into()),
    }
}

/// The current header (valid, highest sequence number) must be version 1.
fn header(head: &[u8]) -> Result<(), Refusal> {
    let current = HEADERS
        .iter()
        .filter_map(|&at| signed(head, at, HEADER_BYTES, b"head"))
        .max_by_key(|h| le64(h, 8).unwrap_or(0))
        .ok_or("The VHDX has no valid header")?;
    match le16(current, 66) {
        Some(1) => Ok(()),
        other => Err(format!(
            "The VHDX header has unsupported version {}",
            other.unwrap_or(0)
        )),
    }
}

/// The metadata table and the items that matter: the virtual size and any parent.
fn items(region: &[u8], region_length: u64) -> Result<Option<u64>, Refusal> {
    let table = slice(region, 0, TABLE_BYTES)
        .filter(|t| t.starts_with(b"metadata"))
        .ok_or("The VHDX metadata table is missing or truncated")?;
    let count = usize::from(le16(table, 10).unwrap_or(u16::MAX));
    if count > MAX_ENTRIES {
        return Err(format!("The VHDX metadata table has {count} entries"));
    }
    let mut size = None;
    for entry in (0..count).filter_map(|n| slice(table, 32 + n * 32, 32)) {
        let id: [u8; 16] = entry[..16].try_into().unwrap_or([0; 16]);
        let offset = le32(entry, 16).unwrap_or(0) as usize;
        let length = le32(entry, 20).unwrap_or(0) as usize;
        let flags = le32(entry, 24).unwrap_or(0);
        let in_range = offset >= TABLE_BYTES && (offset + length) as u64 <= region_length;
        let value = slice(region, offset, length).filter(|_| in_range);
        match (id, value) {
            (PARENT_LOCATOR, _) => return Err(parent()),
            (FILE_PARAMETERS, Some(v)) if le32(v, 4).unwrap_or(0) & HAS_PARENT != 0 => {
                return Err(parent());
            }
            (VIRTUAL_DISK_SIZE, Some(v)) => size = le64(v, 0),
            (FILE_PARAMETERS, Some(_)) => {}
            (_, None) if length > 0 => {
                return Err("A VHDX metadata item lies outside what can be inspected".into());
            }
            (other, _) if flags & ITEM_REQUIRED != 0 && !HARMLESS_ITEMS.contains(&other) => {
                return Err("The VHDX has an unknown required metadata item".into());
            }
            _ => {}
        }
    }
    size.filter(|&s| s <= i64::MAX as u64)
        .map(Some)
        .ok_or_else(|| "The VHDX metadata gives no valid virtual size".into())
}

fn parent() -> Refusal {
    "The VHDX is a differencing disk that names a parent; only standalone disks are accepted \
     (OSSA-2015-014)"
        .into()
}

#[cfg(test)]
pub(super) mod tests;
