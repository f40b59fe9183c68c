//! VDI (VirtualBox; qemu's block/vdi.c): a signature at 0x40 and a version 1.1 header.
//! Refused: undo and differencing images, and link or parent UUIDs, which tie the disk to
//! another; qemu refuses them too.

use super::bytes::{le32, le64, slice};
use super::{Refusal, Sample};

const SIGNATURE: u32 = 0xbeda_107f;
const VERSION_1_1: u32 = 0x0001_0001;
const NORMAL: u32 = 1;
const FIXED: u32 = 2;
/// The header up to and including the parent UUID.
const HEADER_END: usize = 0x1c8;

pub(super) fn matches(head: &[u8]) -> bool {
    le32(head, 0x40) == Some(SIGNATURE)
}

pub(super) fn inspect(s: &Sample) -> Result<Option<u64>, Refusal> {
    let header = slice(s.head, 0, HEADER_END).ok_or("The VDI header is truncated")?;
    if le32(header, 0x44) != Some(VERSION_1_1) {
        return Err("The VDI header is not version 1.1".into());
    }
    match le32(header, 0x4c) {
        Some(NORMAL | FIXED) => {}
        _ => {
            return Err(
                "The VDI is an undo or differencing image tied to another disk; only \
                 normal and fixed images are accepted"
                    .into(),
            );
        }
    }
    if header[0x1a8..HEADER_END].iter().any(|&b| b != 0) {
        return Err("The VDI links to a parent disk; only standalone images are accepted".into());
    }
    le64(header, 0x170)
        .filter(|&size| size <= i64::MAX as u64)
        .map(Some)
        .ok_or_else(|| "The VDI disk size overflows".into())
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got

    use super::super::inspect_bytes;
    use super::*;
    use crate::image::DiskFormat;

    pub(crate) fn vdi(image_type: u32, size: u64) -> Vec<u8> {
        let mut h = vec![0u8; 1024];
        h[0x40..0x44].copy_from_slice(&SIGNATURE.to_le_bytes());
        h[0x44..0x48].copy_from_slice(&VERSION_1_1.to_le_bytes());
        h[0x4c..0x50].copy_from_slice(&image_type.to_le_bytes());
        h[0x170..0x178].copy_from_slice(&size.to_le_bytes());
        h
    }

    fn verdict(data: &[u8]) -> Result<Option<u64>, String> {
        inspect_bytes(DiskFormat::Vdi, data).map_err(|e| e.to_string())
    }

    #[test]
    fn normal_and_fixed_images_give_their_size() {
        assert_eq!(verdict(&vdi(NORMAL, 64 << 20)), Ok(Some(64 << 20)));
        assert_eq!(verdict(&vdi(FIXED, 1 << 30)), Ok(Some(1 << 30)));
    }

    #[test]
    fn differencing_linked_truncated_or_odd_images_are_refused() {
        assert!(
            verdict(&vdi(4, 1 << 20))
                .unwrap_err()
                .contains("differencing")
        );
        assert!(verdict(&vdi(3, 1 << 20)).is_err());
        let mut linked = vdi(NORMAL, 1 << 20);
        linked[0x1b8] = 1;
        assert!(verdict(&linked).unwrap_err().contains("parent"));
        assert!(
            verdict(&vdi(NORMAL, 1 << 20)[..0x100])
                .unwrap_err()
                .contains("truncated")
        );
        let mut version = vdi(NORMAL, 1 << 20);
        version[0x44] = 0;
        assert!(verdict(&version).is_err());
        assert!(
            verdict(&vdi(NORMAL, u64::MAX))
                .unwrap_err()
                .contains("overflows")
        );
    }
}
