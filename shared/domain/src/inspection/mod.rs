//! Disk-format inspection, a security boundary. Images tenants upload are later opened by
//! `qemu-img` and hypervisors on hosts that hold other tenants' data; a format that names
//! other files (qcow2 backing or data files, VMDK extents and parents, differencing VHD and
//! VHDX disks, QED) makes them read those files: OSSA-2015-014, OSSA-2016-012,
//! OSSA-2023-002, OSSA-2024-001. This module decides, from a bounded sample of the bytes, that
//! the data is what `disk_format` says, that every way of reading it is standalone, and what
//! its virtual size is. Direct uploads, staged uploads and import tasks all stream through
//! one [`Inspector`], so they get one verdict.
//!
//! The sample: the first [`HEAD_BYTES`], the last [`TAIL_BYTES`], and at most one further
//! region of at most [`REGION_BYTES`] that a format's head asks for (a VHDX metadata region).
//! Nothing else is kept, whatever the size of the image.

mod bytes;
mod iso;
mod mbr;
mod qcow2;
mod vdi;
mod vhd;
mod vhdx;
mod vmdk;

use crate::error::{DomainError, DomainResult};
use crate::image::DiskFormat;

/// Bytes kept from the start: every header this module reads lies within them (a VHDX's
/// region tables end at 320 KiB; an ISO's volume descriptors start at 32 KiB).
pub const HEAD_BYTES: usize = 320 * 1024;
/// Bytes kept from the end: a VHD footer (512) and a streamOptimized VMDK's footer (1,536).
pub const TAIL_BYTES: usize = 4096;
/// The most kept of a region a head points at (the start of a VHDX metadata region).
pub const REGION_BYTES: usize = 1024 * 1024;

const LUKS_MAGIC: &[u8] = b"LUKS\xba\xbe";

/// A way the data can be read, told by a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// QEMU copy-on-write.
    Qcow2,
    /// QEMU enhanced disk: refused whatever is declared.
    Qed,
    /// Dynamic or differencing VHD (a footer copy at the start).
    VhdDynamic,
    /// Fixed VHD (a footer only at the end).
    VhdFixed,
    /// Hyper-V VHDX.
    Vhdx,
    /// VMDK sparse extent, with or without an embedded descriptor.
    VmdkSparse,
    /// A VMDK descriptor file, or VMware's older COWD sparse format.
    VmdkDescriptor,
    /// VirtualBox disk.
    Vdi,
    /// ISO 9660 (a volume descriptor at 32 KiB).
    Iso,
    /// A LUKS v1 encrypted volume: no disk format here declares it.
    Luks,
}

impl Detected {
    fn name(self) -> &'static str {
        match self {
            Detected::Qcow2 => "qcow2",
            Detected::Qed => "qed",
            Detected::VhdDynamic | Detected::VhdFixed => "vhd",
            Detected::Vhdx => "vhdx",
            Detected::VmdkSparse | Detected::VmdkDescriptor => "vmdk",
            Detected::Vdi => "vdi",
            Detected::Iso => "iso",
            Detected::Luks => "luks",
        }
    }
}

/// What an inspector has seen. `tail`, `region` and `total` are `None` while the stream
/// goes on: checks that need them wait for the end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample<'a> {
    head: &'a [u8],
    tail: Option<&'a [u8]>,
    /// The region the head asked for: its offset in the data and the bytes kept of it.
    region: Option<(u64, &'a [u8])>,
    total: Option<u64>,
}

/// Why a format's own check refused data: a sentence for the uploader.
type Refusal = String;

/// A refusal: which check refused (a short, fixed label operators count refusals by) and
/// the sentence the uploader gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// `ambiguous`, `format_mismatch`, `mbr`, or the format whose own check failed
    /// (`qcow2`, `vmdk`, `qed`, …).
    pub reason: &'static str,
    /// What was wrong, for the uploader.
    pub message: String,
}

impl Refused {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

impl From<Refused> for DomainError {
    fn from(refused: Refused) -> Self {
        DomainError::Invalid(refused.message)
    }
}

/// Every reading the signatures allow. A dynamic VHD's own footer at the end is part of its
/// one reading, not a second (fixed) one.
pub fn detect(head: &[u8], tail: &[u8]) -> Vec<Detected> {
    readings(&Sample {
        head,
        tail: Some(tail),
        region: None,
        total: None,
    })
}

fn readings(s: &Sample) -> Vec<Detected> {
    let head = s.head;
    let mut found = Vec::new();
    let starts = [
        (qcow2::MAGIC, Detected::Qcow2),
        (b"QED\0".as_slice(), Detected::Qed),
        (vhdx::SIGNATURE, Detected::Vhdx),
        (vmdk::SPARSE_MAGIC, Detected::VmdkSparse),
        (vmdk::COWD_MAGIC, Detected::VmdkDescriptor),
        (vhd::COOKIE, Detected::VhdDynamic),
        (LUKS_MAGIC, Detected::Luks),
    ];
    found.extend(
        starts
            .iter()
            .filter(|(magic, _)| head.starts_with(magic))
            .map(|(_, detected)| *detected),
    );
    if vmdk::is_descriptor(head) {
        found.push(Detected::VmdkDescriptor);
    }
    if vdi::matches(head) {
        found.push(Detected::Vdi);
    }
    if iso::matches(head) {
        found.push(Detected::Iso);
    }
    let has_fixed_footer = s.tail.is_some_and(vhd::has_footer_at_end);
    if has_fixed_footer && !found.contains(&Detected::VhdDynamic) {
        found.push(Detected::VhdFixed);
    }
    found
}

/// Each reading's own checks: that it is well formed and names no other file. Returns the
/// virtual size the reading declares.
fn check(reading: Detected, s: &Sample) -> Result<Option<u64>, Refused> {
    let checked: Result<Option<u64>, Refusal> = match reading {
        Detected::Qcow2 => qcow2::inspect(s),
        Detected::Qed => Err(
            "QED images are refused whatever disk_format says: the format \
             carries backing files and nothing needs it (OSSA-2015-014)"
                .into(),
        ),
        Detected::VhdDynamic | Detected::VhdFixed => vhd::inspect(s),
        Detected::Vhdx => vhdx::inspect(s),
        Detected::VmdkSparse | Detected::VmdkDescriptor => vmdk::inspect(s),
        Detected::Vdi => vdi::inspect(s),
        Detected::Iso => iso::inspect(s),
        Detected::Luks => match bytes::be16(s.head, 6) {
            Some(1) => Ok(None),
            Some(version) => Err(format!("LUKS version {version} is not supported")),
            None => Err("The LUKS header is truncated".into()),
        },
    };
    checked.map_err(|message| Refused::new(reading.name(), message))
}

fn describe(readings: &[Detected]) -> String {
    match readings {
        [] => "raw data (no known disk header)".into(),
        [one] => one.name().into(),
        many => many
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join(" and "),
    }
}

/// A file valid as two formats at once is refused (a reader may pick either), except an
/// ISO's bytes in a fixed VHD or as a raw disk: neither reading names another file, and the
/// VHD footer or the raw bytes are what the file really is.
fn two_readings_allowed(declared: DiskFormat, readings: &[Detected]) -> bool {
    readings.len() < 2
        || (readings.len() == 2
            && readings.contains(&Detected::Iso)
            && readings.contains(&Detected::VhdFixed)
            && matches!(declared, DiskFormat::Vhd | DiskFormat::Raw))
}

/// The verdict on a sample: the virtual size, or why the data is refused. On a partial sample
/// (the stream goes on) only refusals the head alone decides are returned.
fn verdict(declared: DiskFormat, s: &Sample) -> Result<Option<u64>, Refused> {
    let readings = readings(s);
    let mut sizes = Vec::with_capacity(readings.len());
    for reading in &readings {
        sizes.push((*reading, check(*reading, s)?));
    }
    if !two_readings_allowed(declared, &readings) {
        return Err(Refused::new(
            "ambiguous",
            format!(
                "The data is valid as {} at once; a file a reader may take for either format \
                 is refused",
                describe(&readings)
            ),
        ));
    }
    let size_of = |wanted: &[Detected]| {
        sizes
            .iter()
            .find(|(d, _)| wanted.contains(d))
            .map(|(_, size)| *size)
    };
    let mismatch = || {
        Refused::new(
            "format_mismatch",
            format!(
                "The data does not look like {declared}: it looks like {}",
                describe(&readings)
            ),
        )
    };
    let single = |wanted: Detected| {
        if readings == [wanted] {
            Ok(size_of(&[wanted]).flatten())
        } else {
            Err(mismatch())
        }
    };
    match declared {
        DiskFormat::Qcow2 => single(Detected::Qcow2),
        DiskFormat::Vhdx => single(Detected::Vhdx),
        DiskFormat::Vmdk => single(Detected::VmdkSparse),
        DiskFormat::Vdi => single(Detected::Vdi),
        DiskFormat::Iso => single(Detected::Iso),
        DiskFormat::Vhd => match size_of(&[Detected::VhdDynamic, Detected::VhdFixed]) {
            Some(size) => Ok(size),
            // A fixed VHD is only known by its footer, at the end.
            None if s.tail.is_none() && readings.is_empty() => Ok(None),
            None => Err(mismatch()),
        },
        DiskFormat::Raw => {
            if readings
                .iter()
                .any(|d| !matches!(d, Detected::Iso | Detected::VhdFixed))
            {
                return Err(mismatch());
            }
            mbr::inspect(s.head).map_err(|message| Refused::new("mbr", message))?;
            Ok(s.total)
        }
        // Not inspected for their own structure; every reading above was checked.
        DiskFormat::Ami | DiskFormat::Ari | DiskFormat::Aki | DiskFormat::Ploop => Ok(None),
    }
}

/// One region of the stream, kept while it passes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Capture {
    offset: u64,
    wanted: usize,
    #[serde(with = "crate::base64_bytes")]
    data: Vec<u8>,
}

impl Capture {
    /// Keeps the part of `bytes` (which start at `start` in the stream) that falls in the region.
    fn take(&mut self, start: u64, bytes: &[u8]) {
        let have = self.offset + self.data.len() as u64;
        let end = start + bytes.len() as u64;
        if self.data.len() >= self.wanted || end <= have || start > have {
            return;
        }
        let from = (have - start) as usize;
        let missing = self.wanted - self.data.len();
        let to = bytes.len().min(from + missing);
        self.data.reserve_exact(to - from);
        self.data.extend_from_slice(&bytes[from..to]);
    }
}

/// Streams data past the checks: feed every block in order with [`Inspector::observe`], then
/// ask [`Inspector::finish`] for the verdict. Memory stays below
/// `HEAD_BYTES + TAIL_BYTES + REGION_BYTES` whatever the data's size. It serializes, so an
/// interrupted import resumes its inspection where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Inspector {
    declared: DiskFormat,
    seen: u64,
    #[serde(with = "crate::base64_bytes")]
    head: Vec<u8>,
    #[serde(with = "crate::base64_bytes")]
    tail: Vec<u8>,
    region: Option<Capture>,
    head_judged: bool,
}

impl Inspector {
    /// An inspector for data declared as `declared`.
    pub fn new(declared: DiskFormat) -> Self {
        Self {
            declared,
            seen: 0,
            head: Vec::with_capacity(HEAD_BYTES),
            tail: Vec::with_capacity(TAIL_BYTES),
            region: None,
            head_judged: false,
        }
    }

    /// Takes the next bytes of the data. Refuses as soon as the first [`HEAD_BYTES`] decide,
    /// so a wrong upload stops early.
    pub fn observe(&mut self, block: &[u8]) -> Result<(), Refused> {
        let start = self.seen;
        self.seen += block.len() as u64;
        let wanted = HEAD_BYTES.saturating_sub(self.head.len());
        let taken = &block[..wanted.min(block.len())];
        // Exact growth: a resumed inspector's buffers start no larger than their contents.
        self.head.reserve_exact(taken.len());
        self.head.extend_from_slice(taken);
        if !self.head_judged && self.head.len() == HEAD_BYTES {
            self.head_judged = true;
            self.judge_head()?;
        }
        if let Some(region) = &mut self.region {
            region.take(start, block);
        }
        self.keep_tail(block);
        Ok(())
    }

    fn keep_tail(&mut self, block: &[u8]) {
        if block.len() >= TAIL_BYTES {
            self.tail.clear();
            self.tail.reserve_exact(TAIL_BYTES);
            self.tail
                .extend_from_slice(&block[block.len() - TAIL_BYTES..]);
        } else {
            // Make room first, so the buffer never grows past its reserved size.
            let excess = (self.tail.len() + block.len()).saturating_sub(TAIL_BYTES);
            self.tail.drain(..excess);
            self.tail.reserve_exact(block.len());
            self.tail.extend_from_slice(block);
        }
    }

    /// With the whole head: refusals it decides alone, and the region it points at.
    fn judge_head(&mut self) -> Result<(), Refused> {
        let sample = Sample {
            head: &self.head,
            tail: None,
            region: None,
            total: None,
        };
        verdict(self.declared, &sample)?;
        if self.head.starts_with(vhdx::SIGNATURE)
            && let Some((offset, wanted)) = vhdx::metadata_region(&self.head)
        {
            let wanted = wanted.min(REGION_BYTES);
            let mut capture = Capture {
                offset,
                wanted,
                data: Vec::with_capacity(wanted),
            };
            capture.take(0, &self.head);
            self.region = Some(capture);
        }
        Ok(())
    }

    /// The verdict once every byte was observed: the virtual size when the format declares
    /// one (raw: the size), or a 400-class refusal naming the reason.
    pub fn finish(self) -> Result<Option<u64>, Refused> {
        let sample = Sample {
            head: &self.head,
            tail: Some(&self.tail),
            region: self.region.as_ref().map(|r| (r.offset, r.data.as_slice())),
            total: Some(self.seen),
        };
        verdict(self.declared, &sample)
    }

    /// The format the data was declared as.
    pub fn declared(&self) -> DiskFormat {
        self.declared
    }

    /// Bytes observed so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Bytes held for inspection now (for tests of the memory bound).
    pub fn retained(&self) -> usize {
        self.head.capacity()
            + self.tail.capacity()
            + self.region.as_ref().map_or(0, |r| r.data.capacity())
    }
}

/// Inspects data held whole in memory (tests, tools).
pub fn inspect_bytes(declared: DiskFormat, data: &[u8]) -> DomainResult<Option<u64>> {
    let mut inspector = Inspector::new(declared);
    inspector.observe(data)?;
    Ok(inspector.finish()?)
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
