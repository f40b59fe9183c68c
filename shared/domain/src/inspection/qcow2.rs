//! qcow2 (QEMU's docs/interop/qcow2.txt): a header of big-endian fields. Refused: a backing
//! file (OSSA-2015-014), an external data file (OSSA-2024-001), incompatible features this
//! module does not know, a corrupt mark, and sizes whose tables would overflow or exceed what
//! qemu itself accepts (OSSA-2016-012).

use super::bytes::{be32, be64};
use super::{Refusal, Sample};

pub(super) const MAGIC: &[u8] = b"QFI\xfb";

/// Incompatible feature bits (header offset 72, version 3).
const DIRTY: u64 = 1 << 0;
const CORRUPT: u64 = 1 << 1;
const EXTERNAL_DATA_FILE: u64 = 1 << 2;
const COMPRESSION_TYPE: u64 = 1 << 3;
const EXTENDED_L2: u64 = 1 << 4;
const KNOWN_INCOMPATIBLE: u64 =
    DIRTY | CORRUPT | EXTERNAL_DATA_FILE | COMPRESSION_TYPE | EXTENDED_L2;

/// Version 2's fixed header; version 3 states its own length at offset 100 (at least 104).
const V2_HEADER: usize = 72;
const V3_MIN_HEADER: usize = 104;
/// qemu's limit on the L1 table (QCOW_MAX_L1_SIZE): larger headers are refused by qemu too.
const MAX_L1_BYTES: u64 = 32 * 1024 * 1024;

pub(super) fn inspect(s: &Sample) -> Result<Option<u64>, Refusal> {
    let head = s.head;
    let truncated = || "The qcow2 header is truncated".to_owned();
    let version = be32(head, 4).ok_or_else(truncated)?;
    let header_length = match version {
        2 => V2_HEADER,
        3 => be32(head, 100).ok_or_else(truncated)? as usize,
        other => return Err(format!("The qcow2 header has unsupported version {other}")),
    };
    if header_length < V2_HEADER.max(if version == 3 { V3_MIN_HEADER } else { 0 })
        || head.len() < header_length
    {
        return Err(truncated());
    }
    if be64(head, 8).ok_or_else(truncated)? != 0 || be32(head, 16).ok_or_else(truncated)? != 0 {
        return Err(
            "The qcow2 image has a backing file; only standalone images are accepted \
             (OSSA-2015-014)"
                .into(),
        );
    }
    if version == 3 {
        features(be64(head, 72).ok_or_else(truncated)?)?;
    }
    let cluster_bits = be32(head, 20).ok_or_else(truncated)?;
    if !(9..=21).contains(&cluster_bits) {
        return Err(format!(
            "The qcow2 cluster size 2^{cluster_bits} is out of range"
        ));
    }
    let size = be64(head, 24).ok_or_else(truncated)?;
    let l1_entries = u64::from(be32(head, 36).ok_or_else(truncated)?);
    tables_fit(size, cluster_bits, l1_entries)?;
    Ok(Some(size))
}

fn features(incompatible: u64) -> Result<(), Refusal> {
    if incompatible & EXTERNAL_DATA_FILE != 0 {
        return Err(
            "The qcow2 image uses an external data file; only standalone images are \
             accepted (OSSA-2024-001)"
                .into(),
        );
    }
    if incompatible & CORRUPT != 0 {
        return Err("The qcow2 image is marked corrupt".into());
    }
    let unknown = incompatible & !KNOWN_INCOMPATIBLE;
    if unknown != 0 {
        return Err(format!(
            "The qcow2 image needs incompatible features this service does not know \
             (bits {unknown:#x})"
        ));
    }
    Ok(())
}

/// The L1 table must cover the virtual size without overflowing, within qemu's own limit.
fn tables_fit(size: u64, cluster_bits: u32, l1_entries: u64) -> Result<(), Refusal> {
    let cluster = 1u64 << cluster_bits;
    // Each L2 table fills a cluster with 8-byte entries, each mapping a cluster.
    let per_l2 = cluster / 8;
    let covered = l1_entries
        .checked_mul(per_l2)
        .and_then(|clusters| clusters.checked_mul(cluster));
    let too_big = || format!("The qcow2 virtual size {size} overflows its tables");
    if size > i64::MAX as u64 || l1_entries.saturating_mul(8) > MAX_L1_BYTES {
        return Err(too_big());
    }
    match covered {
        Some(covered) if covered >= size => Ok(()),
        // The product itself overflowing means the table covers any representable size.
        None => Ok(()),
        Some(_) => Err(too_big()),
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got

    use super::super::inspect_bytes;
    use crate::image::DiskFormat;

    /// A qcow2 header as qemu-img writes it, with the fields under test set.
    pub(crate) fn header(version: u32, size: u64, incompatible: u64) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&version.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&size.to_be_bytes());
        let l1 = size.div_ceil((1u64 << 16) * (1 << 13)) as u32;
        h[36..40].copy_from_slice(&l1.to_be_bytes());
        h[72..80].copy_from_slice(&incompatible.to_be_bytes());
        h[100..104].copy_from_slice(&112u32.to_be_bytes());
        h
    }

    fn verdict(h: &[u8]) -> Result<Option<u64>, String> {
        inspect_bytes(DiskFormat::Qcow2, h).map_err(|e| e.to_string())
    }

    #[test]
    fn a_standalone_qcow2_gives_its_virtual_size() {
        assert_eq!(verdict(&header(3, 1 << 30, 0)), Ok(Some(1 << 30)));
        assert_eq!(verdict(&header(2, 4 << 40, 0)), Ok(Some(4 << 40)));
        assert_eq!(
            verdict(&header(3, 1 << 20, 1)),
            Ok(Some(1 << 20)),
            "dirty is fine"
        );
    }

    #[test]
    fn backing_and_external_data_files_are_refused() {
        let mut backing = header(3, 1 << 20, 0);
        backing[8..16].copy_from_slice(&512u64.to_be_bytes());
        assert!(verdict(&backing).unwrap_err().contains("backing file"));
        let mut named = header(2, 1 << 20, 0);
        named[16..20].copy_from_slice(&7u32.to_be_bytes());
        assert!(verdict(&named).unwrap_err().contains("backing file"));
        assert!(
            verdict(&header(3, 1 << 20, 4))
                .unwrap_err()
                .contains("external data file")
        );
    }

    #[test]
    fn unknown_incompatible_features_and_corruption_are_refused() {
        assert!(
            verdict(&header(3, 1 << 20, 1 << 5))
                .unwrap_err()
                .contains("0x20")
        );
        assert!(verdict(&header(3, 1 << 20, 1 << 63)).is_err());
        assert!(
            verdict(&header(3, 1 << 20, 2))
                .unwrap_err()
                .contains("corrupt")
        );
        assert!(
            verdict(&header(2, 1 << 20, 1 << 5)).is_ok(),
            "v2 has no feature bits"
        );
    }

    #[test]
    fn sizes_that_overflow_or_exceed_the_tables_are_refused() {
        let mut huge = header(3, u64::MAX, 0);
        assert!(verdict(&huge).unwrap_err().contains("overflows"));
        huge[36..40].copy_from_slice(&1u32.to_be_bytes());
        huge[24..32].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(
            verdict(&huge).unwrap_err().contains("overflows"),
            "one L1 entry is 512 MiB"
        );
        let mut l1 = header(3, 1 << 20, 0);
        l1[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(verdict(&l1).is_err(), "an L1 table over qemu's 32 MiB");
        let mut cluster = header(3, 1 << 20, 0);
        cluster[20..24].copy_from_slice(&40u32.to_be_bytes());
        assert!(verdict(&cluster).unwrap_err().contains("cluster size"));
    }

    #[test]
    fn truncated_or_unknown_headers_are_refused_not_guessed() {
        let full = header(3, 1 << 20, 0);
        for len in [4, 8, 40, 71, 80, 103] {
            assert!(verdict(&full[..len]).is_err(), "{len} bytes");
        }
        let mut long = header(3, 1 << 20, 0);
        long[100..104].copy_from_slice(&4096u32.to_be_bytes());
        assert!(verdict(&long).unwrap_err().contains("truncated"));
        let mut v4 = header(3, 1 << 20, 0);
        v4[4..8].copy_from_slice(&4u32.to_be_bytes());
        assert!(verdict(&v4).unwrap_err().contains("version 4"));
    }
}
