//! Fixed-width integers at offsets of a byte slice. Every read is bounds-checked and answers
//! `None` past the end, so a truncated header can never panic an inspector.

pub(super) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(super) fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

pub(super) fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(super) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(super) fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(super) fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// A slice of `len` bytes at `at`, if all of it is there.
pub(super) fn slice(b: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    b.get(at..at.checked_add(len)?)
}

/// A u64 offset or length as an index into memory, if it fits.
pub(super) fn index(value: u64) -> Option<usize> {
    usize::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_or_at_huge_offsets_are_none() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(be32(&b, 0), Some(0x0102_0304));
        assert_eq!(le32(&b, 4), Some(0x0807_0605));
        assert_eq!(be64(&b, 1), None);
        assert_eq!(le16(&b, usize::MAX), None);
        assert_eq!(slice(&b, usize::MAX - 1, 4), None);
        assert_eq!(slice(&b, 6, 2), Some(&b[6..8]));
    }
}
