//! The partition table of a raw disk, checked as oslo.utils' GPT inspector does by default.
//! When the first sector carries the MBR signature (and is not a FAT boot sector, which
//! shares it): every entry's boot flag must be 0x00 or 0x80, at least one partition must be
//! defined, and a protective GPT entry (type 0xEE) must be the first and only partition,
//! starting at CHS 0/2/0 and LBA 1.

use super::Refusal;
use super::bytes::{le16, le32, slice};

const SIGNATURE: u16 = 0xAA55;
const ENTRIES: usize = 446;
const ENTRY: usize = 16;
const PROTECTIVE: u8 = 0xEE;
/// A FAT boot sector: two FATs (offset 0x10) on a fixed disk (media descriptor 0xF8 at 0x15).
const FAT_COPIES: (usize, u8) = (0x10, 2);
const FIXED_DISK_MEDIA: (usize, u8) = (0x15, 0xF8);

fn is_fat_boot_sector(head: &[u8]) -> bool {
    head.get(FAT_COPIES.0) == Some(&FAT_COPIES.1)
        && head.get(FIXED_DISK_MEDIA.0) == Some(&FIXED_DISK_MEDIA.1)
}

pub(super) fn inspect(head: &[u8]) -> Result<(), Refusal> {
    if le16(head, 510) != Some(SIGNATURE) || is_fat_boot_sector(head) {
        return Ok(());
    }
    let mut used = Vec::new();
    let mut protective = false;
    for n in 0..4 {
        let entry = slice(head, ENTRIES + n * ENTRY, ENTRY).ok_or("The MBR is truncated")?;
        if !matches!(entry[0], 0x00 | 0x80) {
            return Err(format!(
                "The disk's MBR partition {n} has an invalid boot flag {:#04x}",
                entry[0]
            ));
        }
        if entry[4] != 0 {
            used.push(n);
        }
        if entry[4] == PROTECTIVE {
            protective = true;
            if entry[1..4] != [0x00, 0x02, 0x00] || le32(entry, 8) != Some(1) {
                return Err("The disk's protective MBR does not start at LBA 1".into());
            }
        }
    }
    if protective && used != [0] {
        return Err("The disk's protective MBR defines partitions besides the GPT".into());
    }
    if used.is_empty() {
        return Err("The disk's MBR defines no partitions".into());
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got

    use super::super::inspect_bytes;
    use crate::image::DiskFormat;

    /// A sector-0 partition table: (boot flag, type) per entry; 0xEE entries are written as a
    /// protective MBR writes them (CHS 0/2/0, LBA 1).
    pub(crate) fn mbr(entries: &[(u8, u8)]) -> Vec<u8> {
        let mut d = vec![0u8; 4096];
        for (n, (boot, kind)) in entries.iter().enumerate() {
            let e = &mut d[446 + n * 16..462 + n * 16];
            e[0] = *boot;
            e[4] = *kind;
            if *kind == 0xEE {
                e[1..4].copy_from_slice(&[0, 2, 0]);
                e[8..12].copy_from_slice(&1u32.to_le_bytes());
            }
        }
        d[510] = 0x55;
        d[511] = 0xAA;
        d
    }

    fn verdict(data: &[u8]) -> Result<Option<u64>, String> {
        inspect_bytes(DiskFormat::Raw, data).map_err(|e| e.to_string())
    }

    #[test]
    fn ordinary_and_gpt_disks_and_fat_volumes_are_accepted() {
        assert_eq!(verdict(&mbr(&[(0x80, 0x83), (0, 0x82)])), Ok(Some(4096)));
        assert_eq!(verdict(&mbr(&[(0, 0xEE)])), Ok(Some(4096)));
        assert_eq!(
            verdict(&[0x13u8; 4096]),
            Ok(Some(4096)),
            "no signature, no table"
        );
        let mut fat = mbr(&[]);
        fat[446] = 0xEB;
        fat[0x10] = 2;
        fat[0x15] = 0xF8;
        assert_eq!(verdict(&fat), Ok(Some(4096)), "a FAT boot sector is no MBR");
    }

    #[test]
    fn bad_boot_flags_empty_tables_and_odd_protective_entries_are_refused() {
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
        assert!(
            verdict(&mbr(&[(0, 0x83), (0, 0xEE)])).is_err(),
            "a GPT entry not first"
        );
        assert!(verdict(&mbr(&[])).unwrap_err().contains("no partitions"));
        let mut lba = mbr(&[(0, 0xEE)]);
        lba[446 + 8] = 2;
        assert!(verdict(&lba).unwrap_err().contains("LBA 1"));
    }
}
