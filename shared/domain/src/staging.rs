//! Staged uploads: image data a client sends in parts straight to the store (through URLs
//! the service issues), checked and made the image's data by a task afterwards.
//!
//! The parts follow S3's multipart rules, enforced here because emulators do not: every
//! part but the last at least 5 MiB, at most 5 GiB each. The service also caps the number
//! of parts so the list of part URLs stays small enough for any response (a Lambda's is 6 MB).

use serde_json::{Map, Value};

use crate::error::{DomainError, DomainResult, Misdirection};

const MIB: u64 = 1024 * 1024;
/// Smallest part offered: above S3's 5 MiB minimum, small enough for a retry to be cheap.
pub const MIN_PART: u64 = 8 * MIB;
/// S3's largest part.
pub const MAX_PART: u64 = 5 * 1024 * MIB;
/// Most parts one staged upload is split into (S3 allows 10,000; 1,000 URLs are ~1 MB).
pub const MAX_PARTS: u64 = 1000;
/// The largest staged upload: `MAX_PARTS` parts of `MAX_PART` bytes.
pub const MAX_STAGED_SIZE: u64 = MAX_PARTS * MAX_PART;

/// How a staged upload of `size` bytes is split: `count` parts of `part_size` bytes, the
/// last holding the remainder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    /// The announced size of the data.
    pub size: u64,
    /// Bytes in every part but the last.
    pub part_size: u64,
    /// Number of parts.
    pub count: u64,
}

impl PartPlan {
    /// The plan for `size` bytes: parts of at least 8 MiB, in whole MiB, and never more
    /// than [`MAX_PARTS`] of them.
    pub fn for_size(size: u64) -> DomainResult<Self> {
        if size == 0 {
            return Err(DomainError::Invalid(
                "size must be a positive number of bytes".into(),
            ));
        }
        if size > MAX_STAGED_SIZE {
            return Err(DomainError::QuotaExceeded(format!(
                "A staged upload holds at most {MAX_STAGED_SIZE} bytes; {size} were announced"
            )));
        }
        let part_size = size.div_ceil(MAX_PARTS).div_ceil(MIB).max(MIN_PART / MIB) * MIB;
        Ok(Self {
            size,
            part_size,
            count: size.div_ceil(part_size),
        })
    }

    /// Bytes in part `number` (1-based).
    pub fn part_len(&self, number: u64) -> u64 {
        if number < self.count {
            self.part_size
        } else {
            self.size - self.part_size * (self.count - 1)
        }
    }
}

/// The sizes of the parts a client uploaded, in part-number order, checked against the
/// rules every completed upload must meet: numbers 1..=n without gaps, every part but the
/// last of one common size of at least 5 MiB, the last no larger. Returns the total size.
pub fn check_uploaded_parts(parts: &[(u64, u64)]) -> DomainResult<u64> {
    let Some(&(_, first_len)) = parts.first() else {
        return Err(DomainError::Invalid(
            "No part of the staged upload has been uploaded".into(),
        ));
    };
    let last_index = parts.len() - 1;
    for (index, &(number, len)) in parts.iter().enumerate() {
        let expected = index as u64 + 1;
        if number != expected {
            return Err(DomainError::Invalid(format!(
                "Part {expected} of the staged upload is missing"
            )));
        }
        let fits = if index == last_index {
            len > 0 && len <= first_len
        } else {
            len == first_len && len >= 5 * MIB
        };
        if !fits {
            return Err(DomainError::Invalid(format!(
                "Part {number} has {len} bytes; every part but the last must have the part_size the upload was given and the last no more"
            )));
        }
    }
    Ok(parts.iter().map(|&(_, len)| len).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: serde_json::Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn stage_and_complete_bodies_take_exactly_their_one_field() {
        use serde_json::json;
        assert_eq!(
            StageRequest::parse(&body(json!({"size": 42}))).ok(),
            Some(StageRequest { size: 42 })
        );
        for bad in [
            json!({}),
            json!({"size": -1}),
            json!({"size": "42"}),
            json!({"size": 1, "x": 2}),
        ] {
            assert!(
                matches!(
                    StageRequest::parse(&body(bad.clone())),
                    Err(DomainError::Invalid(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            CompleteRequest::parse(&body(json!({"upload_id": "u1"}))).ok(),
            Some(CompleteRequest {
                upload_id: "u1".into()
            })
        );
        assert!(matches!(
            CompleteRequest::parse(&body(json!({}))),
            Err(DomainError::Misdirected(Misdirection::UploadIdRequired))
        ));
        assert!(matches!(
            CompleteRequest::parse(&body(json!({"upload_id": "u1", "size": 1}))),
            Err(DomainError::Invalid(_))
        ));
    }

    #[test]
    fn small_images_get_one_part_of_their_size() {
        let plan = PartPlan::for_size(1000).expect("plan");
        assert_eq!((plan.part_size, plan.count), (MIN_PART, 1));
        assert_eq!(plan.part_len(1), 1000);
    }

    #[test]
    fn parts_are_8_mib_until_a_thousand_of_them_would_not_do() {
        let plan = PartPlan::for_size(20 * MIB + 5).expect("plan");
        assert_eq!((plan.part_size, plan.count), (8 * MIB, 3));
        assert_eq!(plan.part_len(3), 4 * MIB + 5);

        let hundred_gib = 100 * 1024 * MIB;
        let plan = PartPlan::for_size(hundred_gib).expect("plan");
        assert!(plan.count <= MAX_PARTS);
        assert_eq!(plan.part_size % MIB, 0);
        assert_eq!(
            (1..=plan.count).map(|n| plan.part_len(n)).sum::<u64>(),
            hundred_gib
        );
    }

    #[test]
    fn empty_and_oversized_uploads_are_refused() {
        assert!(matches!(
            PartPlan::for_size(0),
            Err(DomainError::Invalid(_))
        ));
        assert!(PartPlan::for_size(MAX_STAGED_SIZE).is_ok());
        assert!(matches!(
            PartPlan::for_size(MAX_STAGED_SIZE + 1),
            Err(DomainError::QuotaExceeded(_))
        ));
    }

    #[test]
    fn uploaded_parts_must_be_contiguous_and_evenly_sized() {
        let part = 8 * MIB;
        assert_eq!(
            check_uploaded_parts(&[(1, part), (2, part), (3, 7)]).expect("valid"),
            2 * part + 7
        );
        assert_eq!(check_uploaded_parts(&[(1, 7)]).expect("one short part"), 7);
        let missing = check_uploaded_parts(&[(1, part), (3, 7)]).expect_err("gap");
        assert!(missing.to_string().contains("Part 2"), "{missing}");
        assert!(check_uploaded_parts(&[(1, part), (2, part - 1), (3, 7)]).is_err());
        assert!(check_uploaded_parts(&[(1, MIB), (2, 7)]).is_err());
        assert!(check_uploaded_parts(&[(1, part), (2, part + 1)]).is_err());
        assert!(check_uploaded_parts(&[]).is_err());
    }
}

fn only_key<'a>(body: &'a Map<String, Value>, key: &str) -> DomainResult<Option<&'a Value>> {
    match body.keys().find(|k| k.as_str() != key) {
        Some(unknown) => Err(DomainError::Invalid(format!(
            "'{unknown}' is not accepted here; send {key}"
        ))),
        None => Ok(body.get(key)),
    }
}

/// A `POST .../file/parts` request: the length of the data to stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageRequest {
    /// The image data's length in bytes.
    pub size: u64,
}

impl StageRequest {
    /// Checks a body of exactly `{"size": <bytes>}`.
    pub fn parse(body: &Map<String, Value>) -> DomainResult<Self> {
        let size = match only_key(body, "size")? {
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| {
            DomainError::Invalid("size is required: the image data's length in bytes".into())
        })?;
        Ok(Self { size })
    }
}

/// A `POST .../file/complete` request: which staged upload to finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteRequest {
    /// The id the part URLs were issued under.
    pub upload_id: String,
}

impl CompleteRequest {
    /// Checks a body of exactly `{"upload_id": "<id>"}`.
    pub fn parse(body: &Map<String, Value>) -> DomainResult<Self> {
        match only_key(body, "upload_id")? {
            Some(Value::String(upload_id)) => Ok(Self {
                upload_id: upload_id.clone(),
            }),
            _ => Err(DomainError::Misdirected(Misdirection::UploadIdRequired)),
        }
    }
}
