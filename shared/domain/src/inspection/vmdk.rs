//! VMDK (VMware's Virtual Disk Format 1.1, and qemu's block/vmdk.c): a sparse extent header
//! (`KDMV`) with an embedded text descriptor, or a descriptor file on its own. The descriptor
//! names extents — files — and may name a parent; OSSA-2023-002 came from descriptors naming
//! host files. Accepted: one monolithicSparse or streamOptimized file whose one SPARSE extent
//! is itself. Refused: every descriptor that names another file (a parent hint or CID, a
//! second extent, an absolute or device path), a descriptor without extents or with unknown
//! access modes or types, standalone descriptors, COWD extents, and streamOptimized footers
//! that are missing or contradict the header.

use super::bytes::{index, le32, le64, slice};
use super::{HEAD_BYTES, Refusal, Sample};

pub(super) const SPARSE_MAGIC: &[u8] = b"KDMV";
pub(super) const COWD_MAGIC: &[u8] = b"COWD";
const DESCRIPTOR_MAGIC: &[u8] = b"# Disk DescriptorFile";
const SECTOR: u64 = 512;
const HEADER: usize = 512;
/// The grain directory's offset in a header whose footer holds the real one.
const GD_AT_END: u64 = u64::MAX;
/// Footer marker, footer, end-of-stream marker: the last three sectors of such a file.
const FOOTER_SPAN: usize = 3 * HEADER;
const MARKER_FOOTER: u32 = 3;
/// Grains above 64 MiB are refused by qemu too.
const MAX_GRAIN_SECTORS: u64 = 128 * 1024;
const CREATE_TYPES: [&str; 2] = ["monolithicSparse", "streamOptimized"];
const ACCESS_MODES: [&str; 3] = ["RW", "RDONLY", "NOACCESS"];
const EXTENT_TYPES: [&str; 8] = [
    "SPARSE",
    "FLAT",
    "ZERO",
    "VMFS",
    "VMFSSPARSE",
    "VMFSRDM",
    "VMFSRAW",
    "SESPARSE",
];

/// Whether the head is a text descriptor (it starts like one, or states a `createType`).
pub(super) fn is_descriptor(head: &[u8]) -> bool {
    let start = &head[..head.len().min(4096)];
    if start.starts_with(SPARSE_MAGIC) || start.starts_with(COWD_MAGIC) {
        // Its embedded descriptor is part of the one reading.
        return false;
    }
    start.starts_with(DESCRIPTOR_MAGIC)
        || start
            .split(|&b| b == b'\n')
            .any(|line| line.trim_ascii_start().starts_with(b"createType"))
}

pub(super) fn inspect(s: &Sample) -> Result<Option<u64>, Refusal> {
    if s.head.starts_with(COWD_MAGIC) {
        return Err(
            "The VMDK is a COWD (hosted sparse) extent, which names a parent disk; only \
             monolithicSparse and streamOptimized VMDKs are accepted"
                .into(),
        );
    }
    if !s.head.starts_with(SPARSE_MAGIC) {
        let text = text_of(&s.head[..s.head.len().min(64 * 1024)]);
        let reason = match parse(&text) {
            Err(reason) => reason,
            Ok(d) => d
                .standalone()
                .err()
                .unwrap_or_else(|| match d.extents.first() {
                    Some((_, Some(file))) => format!("its extent is the file '{file}'"),
                    _ => "it holds no data of its own".into(),
                }),
        };
        return Err(format!(
            "The VMDK is a descriptor file that references other files ({reason}); upload a \
             monolithicSparse or streamOptimized VMDK (OSSA-2023-002)"
        ));
    }
    sparse(s)
}

/// A sparse extent: its header, its embedded descriptor and, with the grain directory at the
/// end, its footer.
fn sparse(s: &Sample) -> Result<Option<u64>, Refusal> {
    let header = slice(s.head, 0, HEADER).ok_or("The VMDK header is truncated")?;
    let version = le32(header, 4).unwrap_or(0);
    if !(1..=3).contains(&version) {
        return Err(format!("The VMDK header has unsupported version {version}"));
    }
    let capacity = le64(header, 12)
        .and_then(|sectors| sectors.checked_mul(SECTOR))
        .filter(|&bytes| bytes <= i64::MAX as u64)
        .ok_or("The VMDK capacity overflows")?;
    let grain = le64(header, 20).unwrap_or(0);
    if !grain.is_power_of_two() || grain > MAX_GRAIN_SECTORS {
        return Err(format!("The VMDK grain size of {grain} sectors is invalid"));
    }
    let create_type = embedded_descriptor(s, header)?;
    if le64(header, 56) == Some(GD_AT_END) {
        if create_type.as_deref() != Some("streamOptimized") {
            return Err(
                "Only a streamOptimized VMDK may keep its grain directory in a footer".into(),
            );
        }
        footer(s, header)?;
    }
    Ok(Some(capacity))
}

/// Checks the embedded descriptor, if the header points at one; returns its createType.
fn embedded_descriptor(s: &Sample, header: &[u8]) -> Result<Option<String>, Refusal> {
    let offset = le64(header, 28).unwrap_or(0);
    let sectors = le64(header, 36).unwrap_or(0);
    if offset == 0 && sectors == 0 {
        // A bare sparse extent: the file is the whole disk.
        return Ok(None);
    }
    let place = offset
        .checked_mul(SECTOR)
        .and_then(index)
        .zip(sectors.checked_mul(SECTOR).and_then(index))
        .filter(|&(at, len)| at >= HEADER && len > 0 && at.saturating_add(len) <= HEAD_BYTES);
    let Some((at, len)) = place else {
        return Err("The VMDK's embedded descriptor lies outside what can be inspected".into());
    };
    if s.total.is_some_and(|total| (at + len) as u64 > total) || at >= s.head.len() {
        return Err("The VMDK's embedded descriptor is truncated".into());
    }
    let end = (at + len).min(s.head.len());
    let descriptor = parse(&text_of(&s.head[at..end]))?;
    descriptor.embedded()?;
    Ok(descriptor.create_type)
}

/// The footer of a streamOptimized VMDK whose header defers the grain directory: a footer
/// marker, a copy of the header with the real directory offset, an end-of-stream marker. It
/// must agree with the header in everything but that offset.
fn footer(s: &Sample, header: &[u8]) -> Result<(), Refusal> {
    let (Some(tail), Some(total)) = (s.tail, s.total) else {
        return Ok(());
    };
    let missing = || "The streamOptimized VMDK has no valid footer at its end".to_owned();
    if tail.len() < FOOTER_SPAN || total < (HEADER + FOOTER_SPAN) as u64 {
        return Err(missing());
    }
    let span = &tail[tail.len() - FOOTER_SPAN..];
    let (marker, footer, end) = (
        &span[..HEADER],
        &span[HEADER..2 * HEADER],
        &span[2 * HEADER..],
    );
    // A marker: sector number (8 bytes), size (4, zero for metadata), type (4).
    if le32(marker, 8) != Some(0)
        || le32(marker, 12) != Some(MARKER_FOOTER)
        || !footer.starts_with(SPARSE_MAGIC)
        || end.iter().any(|&b| b != 0)
    {
        return Err(missing());
    }
    // version, flags, capacity, grain, descriptor offset and size, GTEs per GT.
    let agree = header[4..48] == footer[4..48];
    let directory = le64(footer, 56).unwrap_or(0);
    let inside = directory
        .checked_mul(SECTOR)
        .is_some_and(|at| at >= HEADER as u64 && at < total);
    if !agree || directory == GD_AT_END || !inside {
        return Err("The streamOptimized VMDK's footer contradicts its header".into());
    }
    Ok(())
}

fn text_of(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// What a descriptor says that matters here.
#[derive(Debug, Default)]
struct Descriptor {
    create_type: Option<String>,
    parent_cid: Option<String>,
    parent_hint: Option<String>,
    /// (type, file name) of each extent.
    extents: Vec<(String, Option<String>)>,
}

fn parse(text: &str) -> Result<Descriptor, Refusal> {
    let mut d = Descriptor::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((key, value)) = line.split_once('=')
            && !ACCESS_MODES.contains(&first)
        {
            let value = Some(value.trim().trim_matches('"').to_owned());
            match key.trim() {
                "createType" => d.create_type = value,
                "parentCID" => d.parent_cid = value,
                "parentFileNameHint" => d.parent_hint = value,
                _ => {}
            }
            continue;
        }
        d.extents.push(extent(line)?);
    }
    Ok(d)
}

/// `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`.
fn extent(line: &str) -> Result<(String, Option<String>), Refusal> {
    let mut words = line.split_whitespace();
    let access = words.next().unwrap_or("");
    if !ACCESS_MODES.contains(&access) {
        return Err(format!(
            "the VMDK descriptor has an unknown extent line '{line}'"
        ));
    }
    let sectors = words.next().unwrap_or("");
    let kind = words.next().unwrap_or("");
    if sectors.parse::<u64>().is_err() || !EXTENT_TYPES.contains(&kind) {
        return Err(format!(
            "the VMDK descriptor has an invalid extent '{line}'"
        ));
    }
    let file = line.find('"').and_then(|open| {
        let rest = &line[open + 1..];
        rest.find('"').map(|close| rest[..close].to_owned())
    });
    if kind != "ZERO" && file.is_none() {
        return Err(format!("the VMDK extent '{line}' names no file"));
    }
    Ok((kind.to_owned(), file))
}

impl Descriptor {
    /// Refusals every descriptor gets: the files it names besides the disk itself.
    fn standalone(&self) -> Result<(), Refusal> {
        if let Some(hint) = &self.parent_hint {
            return Err(format!(
                "it names a parent file '{hint}' (parentFileNameHint)"
            ));
        }
        if let Some(cid) = &self.parent_cid
            && !cid.eq_ignore_ascii_case("ffffffff")
        {
            return Err(format!("it links to a parent disk (parentCID={cid})"));
        }
        let Some((_, file)) = self.extents.first() else {
            return Err("it has no extents".into());
        };
        if let Some(file) = file
            && (file.contains(['/', '\\']) || file.starts_with('.') || file.contains(':'))
        {
            return Err(format!("its extent names the path '{file}'"));
        }
        if self.extents.len() > 1 {
            return Err("it names a second extent file".into());
        }
        Ok(())
    }

    /// An embedded descriptor: standalone, of an accepted createType, its extent sparse.
    fn embedded(&self) -> Result<(), Refusal> {
        let create_type = self.create_type.as_deref().unwrap_or("");
        if !CREATE_TYPES.contains(&create_type) {
            return Err(format!(
                "The VMDK's createType '{create_type}' references other files; only \
                 monolithicSparse and streamOptimized are accepted (OSSA-2023-002)"
            ));
        }
        self.standalone().map_err(|reason| {
            format!("The VMDK's descriptor is refused: {reason} (OSSA-2023-002)")
        })?;
        if self
            .extents
            .first()
            .is_some_and(|(kind, _)| kind != "SPARSE")
        {
            return Err("The VMDK's one extent is not its own sparse data".into());
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests;
