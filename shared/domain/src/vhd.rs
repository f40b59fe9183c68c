//! Fixed VHD: raw sectors followed by a 512-byte footer (Microsoft's VHD specification).
//! Converting raw ↔ fixed VHD is adding or removing that footer, so both stream.

/// Size of the footer.
pub const FOOTER_BYTES: usize = 512;
/// Disk sector size; a fixed VHD's data is whole sectors.
pub const SECTOR: u64 = 512;

const COOKIE: &[u8; 8] = b"conectix";
const FEATURES_RESERVED: u32 = 2;
const FORMAT_VERSION: u32 = 0x0001_0000;
const FIXED_DATA_OFFSET: u64 = u64::MAX;
const DISK_TYPE_FIXED: u32 = 2;
/// XenServer's creator tag, the writer of Rackspace's VHDs: readers such as qemu then take
/// the disk size from the footer's size field rather than from the rounded CHS geometry.
const CREATOR_APP: &[u8; 4] = b"tap\0";
const CREATOR_HOST_OS: &[u8; 4] = b"Wi2k";
/// VHD timestamps count from 2000-01-01T00:00:00Z.
const VHD_EPOCH: i64 = 946_684_800;

/// The CHS geometry the specification derives from a size (cylinders, heads, sectors/track).
fn geometry(size: u64) -> (u16, u8, u8) {
    let mut total = size / SECTOR;
    total = total.min(65_535 * 16 * 255);
    let (sectors, heads, cylinders_times_heads) = if total >= 65_535 * 16 * 63 {
        (255, 16, total / 255)
    } else {
        let mut sectors = 17;
        let mut cth = total / sectors;
        let mut heads = cth.div_ceil(1024).max(4);
        if cth >= heads * 1024 || heads > 16 {
            sectors = 31;
            heads = 16;
            cth = total / sectors;
        }
        if cth >= heads * 1024 {
            sectors = 63;
            heads = 16;
            cth = total / sectors;
        }
        (sectors, heads, cth)
    };
    let cylinders = cylinders_times_heads / heads;
    (
        u16::try_from(cylinders).unwrap_or(u16::MAX),
        u8::try_from(heads).unwrap_or(u8::MAX),
        u8::try_from(sectors).unwrap_or(u8::MAX),
    )
}

/// The footer of a fixed VHD whose data is `size` bytes (a multiple of [`SECTOR`]).
pub fn fixed_footer(size: u64, unique_id: [u8; 16], unix_time: i64) -> [u8; FOOTER_BYTES] {
    let mut footer = [0u8; FOOTER_BYTES];
    footer[0..8].copy_from_slice(COOKIE);
    footer[8..12].copy_from_slice(&FEATURES_RESERVED.to_be_bytes());
    footer[12..16].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    footer[16..24].copy_from_slice(&FIXED_DATA_OFFSET.to_be_bytes());
    let stamp = u32::try_from(unix_time.saturating_sub(VHD_EPOCH).max(0)).unwrap_or(u32::MAX);
    footer[24..28].copy_from_slice(&stamp.to_be_bytes());
    footer[28..32].copy_from_slice(CREATOR_APP);
    footer[32..36].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    footer[36..40].copy_from_slice(CREATOR_HOST_OS);
    footer[40..48].copy_from_slice(&size.to_be_bytes());
    footer[48..56].copy_from_slice(&size.to_be_bytes());
    let (cylinders, heads, sectors) = geometry(size);
    footer[56..58].copy_from_slice(&cylinders.to_be_bytes());
    footer[58] = heads;
    footer[59] = sectors;
    footer[60..64].copy_from_slice(&DISK_TYPE_FIXED.to_be_bytes());
    footer[68..84].copy_from_slice(&unique_id);
    let checksum = !footer.iter().map(|&b| u32::from(b)).sum::<u32>();
    footer[64..68].copy_from_slice(&checksum.to_be_bytes());
    footer
}

/// Whether `footer` is the footer of a fixed VHD (cookie and disk type), so that the bytes
/// before it are the raw disk.
pub fn is_fixed_footer(footer: &[u8]) -> bool {
    footer.len() == FOOTER_BYTES
        && footer.starts_with(COOKIE)
        && footer[60..64] == DISK_TYPE_FIXED.to_be_bytes()
}

/// Zero bytes that bring `size` up to whole sectors.
pub fn padding_to_sector(size: u64) -> u64 {
    (SECTOR - size % SECTOR) % SECTOR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_footer_checksums_to_all_ones_complement() {
        let footer = fixed_footer(10 << 20, [7; 16], VHD_EPOCH + 5);
        let stored = u32::from_be_bytes([footer[64], footer[65], footer[66], footer[67]]);
        let mut zeroed = footer;
        zeroed[64..68].fill(0);
        assert_eq!(stored, !zeroed.iter().map(|&b| u32::from(b)).sum::<u32>());
        assert!(is_fixed_footer(&footer));
        assert_eq!(&footer[48..56], &(10u64 << 20).to_be_bytes());
    }

    #[test]
    fn geometry_follows_the_specification_examples() {
        // 10 MiB: 20480 sectors → 17 sectors/track, 4 heads, 301 cylinders.
        assert_eq!(geometry(10 << 20), (301, 4, 17));
        // Very large disks clamp to the maximum geometry.
        assert_eq!(geometry(4 << 40), (65_535, 16, 255));
    }

    #[test]
    fn padding_reaches_the_next_sector() {
        assert_eq!(padding_to_sector(0), 0);
        assert_eq!(padding_to_sector(512), 0);
        assert_eq!(padding_to_sector(513), 511);
    }
}
