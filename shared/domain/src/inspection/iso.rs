//! ISO 9660 (ECMA-119): volume descriptors of 2,048 bytes from 32 KiB on, ended by a set
//! terminator. A declared ISO must have a valid primary volume descriptor, whose both-endian
//! fields must agree; the virtual size is its volume space size times its block size.

use super::bytes::{be16, be32, le16, le32, slice};
use super::{Refusal, Sample};

const FIRST: usize = 0x8000;
const DESCRIPTOR: usize = 2048;
const IDENTIFIER: &[u8] = b"CD001";
const PRIMARY: u8 = 1;
const TERMINATOR: u8 = 255;

/// Whether a volume descriptor's identifier sits where an ISO's first one does.
pub(super) fn matches(head: &[u8]) -> bool {
    slice(head, FIRST + 1, IDENTIFIER.len()) == Some(IDENTIFIER)
}

pub(super) fn inspect(s: &Sample) -> Result<Option<u64>, Refusal> {
    let primary = primary_descriptor(s.head)?;
    let blocks = le32(primary, 80).filter(|&n| be32(primary, 84) == Some(n));
    let block_size = le16(primary, 128).filter(|&n| be16(primary, 130) == Some(n));
    match (blocks, block_size) {
        (Some(blocks), Some(size @ (512 | 1024 | 2048))) => {
            Ok(Some(u64::from(blocks) * u64::from(size)))
        }
        _ => Err(
            "The ISO's primary volume descriptor is invalid (its size fields disagree \
             or are out of range)"
                .into(),
        ),
    }
}

fn primary_descriptor(head: &[u8]) -> Result<&[u8], Refusal> {
    let mut at = FIRST;
    loop {
        let Some(descriptor) = slice(head, at, DESCRIPTOR) else {
            return Err("The ISO's volume descriptors are truncated or too many to inspect".into());
        };
        if &descriptor[1..6] != IDENTIFIER || descriptor[6] != 1 {
            return Err("The ISO has an invalid volume descriptor".into());
        }
        match descriptor[0] {
            PRIMARY => return Ok(descriptor),
            TERMINATOR => return Err("The ISO has no primary volume descriptor".into()),
            _ => at += DESCRIPTOR,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got

    use super::super::inspect_bytes;
    use super::*;
    use crate::image::DiskFormat;

    /// An ISO of `blocks` 2 KiB blocks: a boot record, the primary descriptor, a terminator.
    pub(crate) fn iso(blocks: u32) -> Vec<u8> {
        let mut d = vec![0u8; FIRST + 4 * DESCRIPTOR];
        for (n, kind) in [0u8, PRIMARY, TERMINATOR].into_iter().enumerate() {
            let v = &mut d[FIRST + n * DESCRIPTOR..FIRST + (n + 1) * DESCRIPTOR];
            v[0] = kind;
            v[1..6].copy_from_slice(IDENTIFIER);
            v[6] = 1;
        }
        let p = &mut d[FIRST + DESCRIPTOR..FIRST + 2 * DESCRIPTOR];
        p[80..84].copy_from_slice(&blocks.to_le_bytes());
        p[84..88].copy_from_slice(&blocks.to_be_bytes());
        p[128..130].copy_from_slice(&2048u16.to_le_bytes());
        p[130..132].copy_from_slice(&2048u16.to_be_bytes());
        d
    }

    fn verdict(data: &[u8]) -> Result<Option<u64>, String> {
        inspect_bytes(DiskFormat::Iso, data).map_err(|e| e.to_string())
    }

    #[test]
    fn the_primary_descriptor_gives_the_size() {
        assert_eq!(verdict(&iso(100)), Ok(Some(204_800)));
        assert_eq!(
            inspect_bytes(DiskFormat::Raw, &iso(100)).ok(),
            Some(Some(0xA000))
        );
    }

    #[test]
    fn invalid_or_missing_primary_descriptors_are_refused() {
        let mut disagree = iso(100);
        disagree[FIRST + DESCRIPTOR + 84] = 9;
        assert!(verdict(&disagree).unwrap_err().contains("invalid"));
        let mut block = iso(100);
        block[FIRST + DESCRIPTOR + 128..FIRST + DESCRIPTOR + 132].copy_from_slice(&[0, 16, 16, 0]);
        assert!(verdict(&block).is_err(), "4 KiB blocks");
        let mut none = iso(100);
        none[FIRST + DESCRIPTOR] = 2;
        none[FIRST + 2 * DESCRIPTOR] = TERMINATOR;
        assert!(verdict(&none).unwrap_err().contains("no primary"));
        let mut broken = iso(100);
        broken[FIRST + DESCRIPTOR + 3] = b'X';
        assert!(verdict(&broken).is_err());
        assert!(
            verdict(&iso(100)[..FIRST + DESCRIPTOR + 100])
                .unwrap_err()
                .contains("truncated")
        );
        assert!(verdict(&[0u8; 40_000]).unwrap_err().contains("raw data"));
    }
}
