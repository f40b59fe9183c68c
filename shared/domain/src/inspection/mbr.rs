//! The partition table of a raw disk, checked as oslo.utils' GPT inspector does by default:
//! when the first sector carries the MBR signature, every partition entry's boot flag must be
//! 0x00 or 0x80, and a protective GPT entry (type 0xEE) must be the only partition.

use super::Refusal;
use super::bytes::{le16, slice};

const SIGNATURE: u16 = 0xAA55;
const ENTRIES: usize = 446;
const ENTRY: usize = 16;
const PROTECTIVE: u8 = 0xEE;

pub(super) fn inspect(head: &[u8]) -> Result<(), Refusal> {
    if le16(head, 510) != Some(SIGNATURE) {
        return Ok(());
    }
    let mut used = 0;
    let mut protective = false;
    for n in 0..4 {
        let Some(entry) = slice(head, ENTRIES + n * ENTRY, ENTRY) else {
            return Ok(());
        };
        if !matches!(entry[0], 0x00 | 0x80) {
            return Err(format!(
                "The disk's MBR partition {n} has an invalid boot flag {:#04x}",
                entry[0]
            ));
        }
        used += usize::from(entry[4] != 0);
        protective |= entry[4] == PROTECTIVE;
    }
    if protective && used > 1 {
        return Err("The disk's protective MBR defines partitions besides the GPT".into());
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got

    use super::super::inspect_bytes;
    use crate::image::DiskFormat;

    pub(crate) fn mbr(entries: &[(u8, u8)]) -> Vec<u8> {
        let mut d = vec![0u8; 4096];
        for (n, (boot, kind)) in entries.iter().enumerate() {
            d[446 + n * 16] = *boot;
            d[446 + n * 16 + 4] = *kind;
        }
        d[510] = 0x55;
        d[511] = 0xAA;
        d
    }

    fn verdict(data: &[u8]) -> Result<Option<u64>, String> {
        inspect_bytes(DiskFormat::Raw, data).map_err(|e| e.to_string())
    }

    #[test]
    fn ordinary_and_gpt_disks_are_accepted() {
        assert_eq!(verdict(&mbr(&[(0x80, 0x83), (0, 0x82)])), Ok(Some(4096)));
        assert_eq!(verdict(&mbr(&[(0, 0xEE)])), Ok(Some(4096)));
        assert_eq!(
            verdict(&[0x13u8; 4096]),
            Ok(Some(4096)),
            "no signature, no table"
        );
    }

    #[test]
    fn invalid_boot_flags_and_extra_partitions_beside_a_gpt_are_refused() {
        assert!(
            verdict(&mbr(&[(0x81, 0x83)]))
                .unwrap_err()
                .contains("boot flag")
        );
        assert!(
            verdict(&mbr(&[(0, 0xEE), (0, 0x83)]))
                .unwrap_err()
                .contains("besides the GPT")
        );
    }
}
