//! VHD (Microsoft's Virtual Hard Disk specification): a 512-byte footer at the end — the
//! authoritative one — and, for dynamic disks, a copy at the start followed by a dynamic
//! header. Refused: differencing disks (whichever copy says so), parent locators or a parent
//! name, footers that disagree or fail their checksum, and disks truncated below their size.

use super::bytes::{be32, be64, index, slice};
use super::{Refusal, Sample};

pub(super) const COOKIE: &[u8] = b"conectix";
const FOOTER: usize = 512;
const DYNAMIC_HEADER: usize = 1024;
const DYNAMIC_COOKIE: &[u8] = b"cxsparse";
const FIXED: u32 = 2;
const DYNAMIC: u32 = 3;
const DIFFERENCING: u32 = 4;
const PARENT_LOCATORS: usize = 8;
const LOCATOR_BYTES: usize = 24;

/// Whether the data ends with a VHD footer.
pub(super) fn has_footer_at_end(tail: &[u8]) -> bool {
    tail.len() >= FOOTER && tail[tail.len() - FOOTER..].starts_with(COOKIE)
}

/// The one's complement of the byte sum, skipping the checksum field itself.
fn checksum_holds(block: &[u8], field: usize) -> bool {
    let sum = block
        .iter()
        .enumerate()
        .filter(|(i, _)| !(field..field + 4).contains(i))
        .map(|(_, &b)| u32::from(b))
        .fold(0u32, u32::wrapping_add);
    be32(block, field) == Some(!sum)
}

/// The footer's disk type, checked: differencing and unknown types are refused.
fn disk_type(footer: &[u8], which: &str) -> Result<u32, Refusal> {
    if !checksum_holds(footer, 64) {
        return Err(format!("The VHD's {which} footer fails its checksum"));
    }
    match be32(footer, 60) {
        Some(DIFFERENCING) => Err("The VHD is a differencing disk that needs a parent; only \
             standalone disks are accepted (OSSA-2015-014)"
            .into()),
        Some(t @ (FIXED | DYNAMIC)) => Ok(t),
        other => Err(format!(
            "The VHD's {which} footer has an unknown disk type {}",
            other.unwrap_or(0)
        )),
    }
}

pub(super) fn inspect(s: &Sample) -> Result<Option<u64>, Refusal> {
    let end_footer = s
        .tail
        .map(|tail| &tail[tail.len().saturating_sub(FOOTER)..]);
    if s.head.starts_with(COOKIE) {
        return dynamic(s, end_footer);
    }
    let Some(footer) = end_footer else {
        return Ok(None);
    };
    match disk_type(footer, "end")? {
        FIXED => {}
        _ => {
            return Err(
                "The VHD's footer says dynamic but the disk has no header copy and \
                 dynamic header at its start"
                    .into(),
            );
        }
    }
    let size = be64(footer, 48).unwrap_or(u64::MAX);
    let data = s.total.unwrap_or(0).saturating_sub(FOOTER as u64);
    if size > data {
        return Err(format!(
            "The fixed VHD declares {size} bytes but holds {data}: it is truncated"
        ));
    }
    Ok(Some(size))
}

fn dynamic(s: &Sample, end_footer: Option<&[u8]>) -> Result<Option<u64>, Refusal> {
    let copy = slice(s.head, 0, FOOTER).ok_or("The VHD footer copy is truncated")?;
    if disk_type(copy, "start")? != DYNAMIC {
        return Err("The VHD's footer copy at the start says fixed; a fixed disk has none".into());
    }
    standalone_header(s.head, copy)?;
    let Some(footer) = end_footer else {
        return Ok(be64(copy, 48));
    };
    if !footer.starts_with(COOKIE) || footer.len() < FOOTER {
        return Err("The dynamic VHD has no footer at its end: it is truncated".into());
    }
    if disk_type(footer, "end")? != DYNAMIC || footer != copy {
        return Err("The VHD's two footers disagree".into());
    }
    Ok(be64(footer, 48))
}

/// The dynamic header a footer points at names no parent.
fn standalone_header(head: &[u8], copy: &[u8]) -> Result<(), Refusal> {
    let at = be64(copy, 16)
        .and_then(index)
        .filter(|&at| at >= FOOTER)
        .ok_or("The VHD's dynamic header offset is invalid")?;
    let header = slice(head, at, DYNAMIC_HEADER)
        .ok_or("The VHD's dynamic header is truncated or too far into the file to inspect")?;
    if !header.starts_with(DYNAMIC_COOKIE) || !checksum_holds(header, 36) {
        return Err("The VHD's dynamic header is invalid".into());
    }
    let parent_id = &header[40..56];
    let parent_name = &header[64..576];
    let locators = (0..PARENT_LOCATORS)
        .any(|n| be32(header, 576 + n * LOCATOR_BYTES).is_some_and(|platform| platform != 0));
    if locators || parent_id.iter().any(|&b| b != 0) || parent_name.iter().any(|&b| b != 0) {
        return Err(
            "The VHD names a parent disk (parent locators); only standalone disks \
             are accepted (OSSA-2015-014)"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got

    use super::super::inspect_bytes;
    use super::*;
    use crate::image::DiskFormat;

    pub(crate) fn seal(block: &mut [u8], field: usize) {
        block[field..field + 4].fill(0);
        let sum = block
            .iter()
            .map(|&b| u32::from(b))
            .fold(0u32, u32::wrapping_add);
        block[field..field + 4].copy_from_slice(&(!sum).to_be_bytes());
    }

    pub(crate) fn footer(disk_type: u32, size: u64, data_offset: u64) -> Vec<u8> {
        let mut f = vec![0u8; FOOTER];
        f[..8].copy_from_slice(COOKIE);
        f[16..24].copy_from_slice(&data_offset.to_be_bytes());
        f[48..56].copy_from_slice(&size.to_be_bytes());
        f[60..64].copy_from_slice(&disk_type.to_be_bytes());
        seal(&mut f, 64);
        f
    }

    /// A dynamic VHD: footer copy, dynamic header, (no blocks), footer.
    pub(crate) fn dynamic_vhd(size: u64, tweak: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let copy = footer(DYNAMIC, size, 512);
        let mut header = vec![0u8; DYNAMIC_HEADER];
        header[..8].copy_from_slice(DYNAMIC_COOKIE);
        let mut data = [copy.clone(), header, vec![0u8; 2048], copy].concat();
        tweak(&mut data);
        let header = &mut data[512..512 + DYNAMIC_HEADER];
        seal(header, 36);
        data
    }

    fn verdict(declared: DiskFormat, data: &[u8]) -> Result<Option<u64>, String> {
        inspect_bytes(declared, data).map_err(|e| e.to_string())
    }

    #[test]
    fn fixed_and_dynamic_disks_give_the_end_footers_size() {
        let fixed = [vec![0u8; 4096], footer(FIXED, 4096, u64::MAX)].concat();
        assert_eq!(verdict(DiskFormat::Vhd, &fixed), Ok(Some(4096)));
        assert_eq!(
            verdict(DiskFormat::Vhd, &dynamic_vhd(1 << 30, |_| {})),
            Ok(Some(1 << 30))
        );
        assert_eq!(
            verdict(DiskFormat::Raw, &fixed),
            Ok(Some(4608)),
            "raw may end so"
        );
    }

    #[test]
    fn a_differencing_disk_is_refused_whichever_copy_says_so() {
        let mut at_start = dynamic_vhd(1 << 20, |_| {});
        at_start[..512].copy_from_slice(&footer(DIFFERENCING, 1 << 20, 512));
        assert!(
            verdict(DiskFormat::Vhd, &at_start)
                .unwrap_err()
                .contains("differencing")
        );
        let mut at_end = dynamic_vhd(1 << 20, |_| {});
        let n = at_end.len();
        at_end[n - 512..].copy_from_slice(&footer(DIFFERENCING, 1 << 20, 512));
        assert!(
            verdict(DiskFormat::Vhd, &at_end)
                .unwrap_err()
                .contains("differencing")
        );
        let fixed = [vec![0u8; 512], footer(DIFFERENCING, 512, u64::MAX)].concat();
        assert!(
            verdict(DiskFormat::Vhd, &fixed)
                .unwrap_err()
                .contains("differencing")
        );
        assert!(
            verdict(DiskFormat::Raw, &fixed).is_err(),
            "raw or not, it names a parent"
        );
    }

    #[test]
    fn parent_locators_and_names_are_refused() {
        let locator = dynamic_vhd(1 << 20, |d| {
            d[512 + 576..512 + 580].copy_from_slice(b"W2ku")
        });
        assert!(
            verdict(DiskFormat::Vhd, &locator)
                .unwrap_err()
                .contains("parent")
        );
        let named = dynamic_vhd(1 << 20, |d| d[512 + 64] = b'x');
        assert!(
            verdict(DiskFormat::Vhd, &named)
                .unwrap_err()
                .contains("parent")
        );
    }

    #[test]
    fn disagreeing_damaged_or_truncated_footers_are_refused() {
        let mut other_size = dynamic_vhd(1 << 20, |_| {});
        let n = other_size.len();
        other_size[n - 512..].copy_from_slice(&footer(DYNAMIC, 1 << 30, 512));
        assert!(
            verdict(DiskFormat::Vhd, &other_size)
                .unwrap_err()
                .contains("disagree")
        );
        let cut = dynamic_vhd(1 << 20, |_| {});
        assert!(verdict(DiskFormat::Vhd, &cut[..cut.len() - 512]).is_err());
        let mut bad_sum = [vec![0u8; 512], footer(FIXED, 512, u64::MAX)].concat();
        bad_sum[512 + 100] = 1;
        assert!(
            verdict(DiskFormat::Vhd, &bad_sum)
                .unwrap_err()
                .contains("checksum")
        );
        let short = [vec![0u8; 512], footer(FIXED, 1 << 20, u64::MAX)].concat();
        assert!(
            verdict(DiskFormat::Vhd, &short)
                .unwrap_err()
                .contains("truncated")
        );
        let orphan = [vec![0u8; 512], footer(DYNAMIC, 512, 512)].concat();
        assert!(verdict(DiskFormat::Vhd, &orphan).is_err());
    }
}
