//! Disk-format inspection: checks that uploaded bytes are what `disk_format` claims, finds
//! the virtual size where the format declares one, and refuses the images that make image
//! services unsafe (qcow2 backing or external data files, VMDK descriptors that reference
//! other files, differencing VHDs). Only the first [`HEAD_BYTES`] and the last
//! [`TAIL_BYTES`] of the data are ever looked at.

use crate::error::{DomainError, DomainResult};
use crate::image::DiskFormat;

/// Bytes kept from the start: enough for an ISO's primary volume descriptor (at 32 KiB)
/// and a VMDK's embedded descriptor.
pub const HEAD_BYTES: usize = 64 * 1024;
/// Bytes kept from the end: a fixed VHD's footer.
pub const TAIL_BYTES: usize = 512;

/// What the data looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// QEMU copy-on-write.
    Qcow2,
    /// Dynamic or differencing VHD (footer copy at the start).
    VhdDynamic,
    /// Fixed VHD (footer only at the end).
    VhdFixed,
    /// Hyper-V VHDX.
    Vhdx,
    /// VMDK sparse extent with an embedded descriptor.
    VmdkSparse,
    /// A bare VMDK descriptor file: it only points at other files.
    VmdkDescriptor,
    /// VirtualBox disk.
    Vdi,
    /// ISO 9660.
    Iso,
    /// Nothing recognised: raw bytes.
    Unrecognised,
}

impl Detected {
    fn describe(self) -> &'static str {
        match self {
            Detected::Qcow2 => "qcow2",
            Detected::VhdDynamic | Detected::VhdFixed => "vhd",
            Detected::Vhdx => "vhdx",
            Detected::VmdkSparse | Detected::VmdkDescriptor => "vmdk",
            Detected::Vdi => "vdi",
            Detected::Iso => "iso",
            Detected::Unrecognised => "raw data (no known disk header)",
        }
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

const VDI_SIGNATURE: u32 = 0xbeda_107f;
const QCOW2_EXTERNAL_DATA_FILE: u64 = 1 << 2;
const VHD_DIFFERENCING: u32 = 4;

/// Recognises the format from the first and last bytes.
pub fn detect(head: &[u8], tail: &[u8]) -> Detected {
    if head.starts_with(b"QFI\xfb") {
        Detected::Qcow2
    } else if head.starts_with(b"vhdxfile") {
        Detected::Vhdx
    } else if head.starts_with(b"KDMV") {
        Detected::VmdkSparse
    } else if head.starts_with(b"# Disk DescriptorFile") {
        Detected::VmdkDescriptor
    } else if le32(head, 0x40) == Some(VDI_SIGNATURE) {
        Detected::Vdi
    } else if head.starts_with(b"conectix") {
        Detected::VhdDynamic
    } else if head.get(0x8001..0x8006) == Some(b"CD001") {
        Detected::Iso
    } else if tail.starts_with(b"conectix") && tail.len() == TAIL_BYTES {
        Detected::VhdFixed
    } else {
        Detected::Unrecognised
    }
}

fn refuse(message: String) -> DomainError {
    DomainError::Invalid(message)
}

fn qcow2(head: &[u8]) -> DomainResult<Option<u64>> {
    let version = be32(head, 4).unwrap_or(0);
    if version != 2 && version != 3 {
        return Err(refuse(format!(
            "The qcow2 header has unsupported version {version}"
        )));
    }
    if be64(head, 8).unwrap_or(0) != 0 {
        return Err(refuse(
            "The qcow2 image has a backing file; only standalone images are accepted".into(),
        ));
    }
    if version == 3 && be64(head, 72).unwrap_or(0) & QCOW2_EXTERNAL_DATA_FILE != 0 {
        return Err(refuse(
            "The qcow2 image uses an external data file; only standalone images are accepted"
                .into(),
        ));
    }
    Ok(be64(head, 24))
}

fn vhd_footer(footer: &[u8]) -> DomainResult<Option<u64>> {
    if be32(footer, 60) == Some(VHD_DIFFERENCING) {
        return Err(refuse("The VHD is a differencing disk that needs a parent; only standalone disks are accepted".into()));
    }
    Ok(be64(footer, 48))
}

/// The `createType` of a VMDK descriptor, if it names one.
fn vmdk_create_type(descriptor: &str) -> Option<&str> {
    descriptor.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "createType").then(|| value.trim().trim_matches('"'))
    })
}

fn vmdk_sparse(head: &[u8]) -> DomainResult<Option<u64>> {
    let sector = 512u64;
    let capacity = le64(head, 12).map(|sectors| sectors.saturating_mul(sector));
    let offset = le64(head, 28).unwrap_or(0).saturating_mul(sector);
    let size = le64(head, 36).unwrap_or(0).saturating_mul(sector);
    if offset == 0 || size == 0 {
        return Ok(capacity);
    }
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let end = usize::try_from(offset.saturating_add(size))
        .unwrap_or(usize::MAX)
        .min(head.len());
    let descriptor = head
        .get(start..end)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    match vmdk_create_type(&descriptor) {
        Some("monolithicSparse" | "streamOptimized") => Ok(capacity),
        Some(other) => Err(refuse(format!(
            "The VMDK's createType '{other}' references other files; only monolithicSparse and streamOptimized are accepted"
        ))),
        None => Err(refuse(
            "The VMDK's embedded descriptor could not be read".into(),
        )),
    }
}

fn iso(head: &[u8]) -> Option<u64> {
    let blocks = u64::from(le32(head, 0x8050)?);
    let block_size = u64::from(le16(head, 0x8080)?);
    Some(blocks * block_size)
}

/// Checks complete upload data against the declared format. `head` is the first
/// [`HEAD_BYTES`] (or all, if shorter), `tail` the last [`TAIL_BYTES`], `total` the size.
/// Returns the virtual size when the format declares one.
pub fn inspect(
    declared: DiskFormat,
    head: &[u8],
    tail: &[u8],
    total: u64,
) -> DomainResult<Option<u64>> {
    let detected = detect(head, tail);
    let mismatch = || {
        refuse(format!(
            "The data does not look like {declared}: it looks like {}",
            detected.describe()
        ))
    };
    match (declared, detected) {
        (DiskFormat::Qcow2, Detected::Qcow2) => qcow2(head),
        (DiskFormat::Vhd, Detected::VhdDynamic) => vhd_footer(head),
        (DiskFormat::Vhd, Detected::VhdFixed) => vhd_footer(tail),
        (DiskFormat::Vhdx, Detected::Vhdx) => Ok(None),
        (DiskFormat::Vmdk, Detected::VmdkSparse) => vmdk_sparse(head),
        (DiskFormat::Vmdk, Detected::VmdkDescriptor) => Err(refuse(
            "The VMDK is a descriptor file that references other files; upload a monolithicSparse or streamOptimized VMDK".into(),
        )),
        (DiskFormat::Vdi, Detected::Vdi) => Ok(le64(head, 0x170)),
        (DiskFormat::Iso, Detected::Iso) => Ok(iso(head)),
        // A raw disk may hold anything, including an ISO or a fixed VHD's trailing footer,
        // but not a format whose header a hypervisor would interpret.
        (DiskFormat::Raw, Detected::Unrecognised | Detected::Iso | Detected::VhdFixed) => Ok(Some(total)),
        (DiskFormat::Ami | DiskFormat::Ari | DiskFormat::Aki | DiskFormat::Ploop, _) => Ok(None),
        _ => Err(mismatch()),
    }
}

/// Checks as early as possible, once the head is complete, so a wrong upload fails without
/// streaming the rest. `None` means the verdict needs the end of the data.
pub fn inspect_head(declared: DiskFormat, head: &[u8]) -> Option<DomainResult<()>> {
    let detected = detect(head, &[]);
    match (declared, detected) {
        // Fixed VHDs and raw data are only known at the end.
        (DiskFormat::Vhd | DiskFormat::Raw, Detected::Unrecognised) => None,
        (DiskFormat::Raw, Detected::Iso) => None,
        _ => Some(inspect(declared, head, &[], 0).map(|_| ())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qcow2_header(version: u32, backing: u64, size: u64, incompatible: u64) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&version.to_be_bytes());
        h[8..16].copy_from_slice(&backing.to_be_bytes());
        h[24..32].copy_from_slice(&size.to_be_bytes());
        h[72..80].copy_from_slice(&incompatible.to_be_bytes());
        h
    }

    fn vhd_footer(disk_type: u32, size: u64) -> Vec<u8> {
        let mut f = vec![0u8; 512];
        f[..8].copy_from_slice(b"conectix");
        f[48..56].copy_from_slice(&size.to_be_bytes());
        f[60..64].copy_from_slice(&disk_type.to_be_bytes());
        f
    }

    fn vmdk(create_type: &str) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[..4].copy_from_slice(b"KDMV");
        h[12..20].copy_from_slice(&2048u64.to_le_bytes());
        h[28..36].copy_from_slice(&1u64.to_le_bytes());
        h[36..44].copy_from_slice(&2u64.to_le_bytes());
        let descriptor = format!(
            "# Disk DescriptorFile\nversion=1\ncreateType=\"{create_type}\"\nRW 2048 SPARSE \"x.vmdk\"\n"
        );
        h[512..512 + descriptor.len()].copy_from_slice(descriptor.as_bytes());
        h
    }

    #[test]
    fn a_standalone_qcow2_gives_its_virtual_size() {
        let head = qcow2_header(3, 0, 1 << 30, 0);
        assert_eq!(
            inspect(DiskFormat::Qcow2, &head, &[], 4096).ok(),
            Some(Some(1 << 30))
        );
    }

    #[test]
    fn a_qcow2_with_a_backing_file_or_external_data_is_refused() {
        let backing = inspect(DiskFormat::Qcow2, &qcow2_header(3, 512, 1 << 20, 0), &[], 0)
            .expect_err("refused");
        assert!(backing.to_string().contains("backing file"));
        let external = inspect(DiskFormat::Qcow2, &qcow2_header(3, 0, 1 << 20, 4), &[], 0)
            .expect_err("refused");
        assert!(external.to_string().contains("external data file"));
        assert!(
            inspect(DiskFormat::Qcow2, &qcow2_header(2, 0, 1 << 20, 4), &[], 0).is_ok(),
            "v2 has no such bit"
        );
    }

    #[test]
    fn raw_declared_but_qcow2_inside_is_refused_naming_qcow2() {
        let error =
            inspect(DiskFormat::Raw, &qcow2_header(3, 0, 1, 0), &[], 512).expect_err("refused");
        assert!(error.to_string().contains("looks like qcow2"), "{error}");
    }

    #[test]
    fn qcow2_declared_but_raw_data_is_refused() {
        let error =
            inspect(DiskFormat::Qcow2, &[0u8; 1024], &[0u8; 512], 1024).expect_err("refused");
        assert!(error.to_string().contains("raw data"), "{error}");
    }

    #[test]
    fn raw_data_has_its_size_as_virtual_size() {
        assert_eq!(
            inspect(DiskFormat::Raw, b"hello", b"hello", 5).ok(),
            Some(Some(5))
        );
    }

    #[test]
    fn vhds_fixed_and_dynamic_are_read_and_differencing_refused() {
        let fixed_tail = vhd_footer(2, 8 << 20);
        assert_eq!(
            inspect(DiskFormat::Vhd, &[0u8; 1024], &fixed_tail, 8 << 20).ok(),
            Some(Some(8 << 20))
        );
        assert_eq!(
            inspect(DiskFormat::Vhd, &vhd_footer(3, 1 << 30), &[], 0).ok(),
            Some(Some(1 << 30))
        );
        assert!(inspect(DiskFormat::Vhd, &vhd_footer(4, 1 << 30), &[], 0).is_err());
        assert!(
            inspect(DiskFormat::Raw, &fixed_tail, &fixed_tail, 512).is_err(),
            "a dynamic VHD is not raw"
        );
    }

    #[test]
    fn vmdk_descriptors_that_point_elsewhere_are_refused() {
        assert_eq!(
            inspect(DiskFormat::Vmdk, &vmdk("monolithicSparse"), &[], 0).ok(),
            Some(Some(2048 * 512))
        );
        assert!(inspect(DiskFormat::Vmdk, &vmdk("streamOptimized"), &[], 0).is_ok());
        let flat = inspect(DiskFormat::Vmdk, &vmdk("monolithicFlat"), &[], 0).expect_err("refused");
        assert!(flat.to_string().contains("monolithicFlat"));
        let text = b"# Disk DescriptorFile\ncreateType=\"twoGbMaxExtentSparse\"\n";
        assert!(inspect(DiskFormat::Vmdk, text, text, 60).is_err());
    }

    #[test]
    fn vdi_and_iso_give_their_virtual_size() {
        let mut vdi = vec![0u8; 512];
        vdi[0x40..0x44].copy_from_slice(&VDI_SIGNATURE.to_le_bytes());
        vdi[0x170..0x178].copy_from_slice(&(64u64 << 20).to_le_bytes());
        assert_eq!(
            inspect(DiskFormat::Vdi, &vdi, &[], 0).ok(),
            Some(Some(64 << 20))
        );
        let mut iso = vec![0u8; 0x9000];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        iso[0x8050..0x8054].copy_from_slice(&100u32.to_le_bytes());
        iso[0x8080..0x8082].copy_from_slice(&2048u16.to_le_bytes());
        assert_eq!(
            inspect(DiskFormat::Iso, &iso, &[], 0).ok(),
            Some(Some(204_800))
        );
        assert!(
            inspect(DiskFormat::Raw, &iso, &[], 0x9000).is_ok(),
            "an ISO is a valid raw disk"
        );
    }

    #[test]
    fn truncated_headers_never_panic() {
        for len in [0, 3, 4, 8, 40, 100, 0x44, 0x8003] {
            let mut head = vec![0u8; len];
            if len >= 4 {
                head[..4].copy_from_slice(b"QFI\xfb");
            }
            for format in DiskFormat::ALL {
                let _ = inspect(*format, &head, &head, len as u64);
                let _ = inspect_head(*format, &head);
            }
        }
    }

    #[test]
    fn the_head_alone_decides_early_when_it_can() {
        assert!(matches!(
            inspect_head(DiskFormat::Qcow2, &[0u8; 1024]),
            Some(Err(_))
        ));
        assert!(inspect_head(DiskFormat::Raw, &[0u8; 1024]).is_none());
        assert!(matches!(
            inspect_head(DiskFormat::Raw, &qcow2_header(3, 0, 1, 0)),
            Some(Err(_))
        ));
    }
}
