//! Containers and their objects: the tenant's own object storage, which import tasks read
//! and export tasks write, offered to the tenant as the subset of the OpenStack Object
//! Storage (Swift) API that python-swiftclient needs.
//!
//! An object's record (size, ETag, type) is kept beside its bytes; listings and the usage
//! counters read records only, so they cost the page they return, never the container.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::error::{DomainError, DomainResult};
use crate::links::ContainerLink;
use crate::task::{ObjectPath, check_container};

/// The most entries one listing page returns (Swift's `container_listing_limit`).
pub const MAX_LISTING: usize = 10_000;
/// The most segments one Static Large Object may join (Swift's `max_manifest_segments`).
pub const MAX_SEGMENTS: usize = 1_000;
/// The largest manifest accepted, in bytes (Swift's `max_manifest_size`).
pub const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

/// A container as its tenant sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    /// Its name.
    pub name: String,
    /// Objects in it.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// For a linked container, where its objects live; `None` for a built-in one.
    pub link: Option<ContainerLink>,
}

/// What a tenant keeps in all its containers; a byte quota counts `bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountUsage {
    /// Containers.
    pub containers: u64,
    /// Objects.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// An object's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    /// Its name in its container.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The MD5 of its bytes in hex; for a Static Large Object, the MD5 of its segments'
    /// ETags, as Swift has it.
    pub etag: String,
    /// The `Content-Type` it was stored with.
    pub content_type: String,
    /// When it was last written.
    pub last_modified: DateTime<Utc>,
    /// For a Static Large Object, its manifest as `multipart-manifest=get` returns it.
    pub manifest: Option<String>,
}

/// One page of a container listing as asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    /// Only names that start with this.
    pub prefix: String,
    /// Names with this character after the prefix are rolled up into one `subdir`.
    pub delimiter: Option<char>,
    /// Only names after this.
    pub marker: String,
    /// Only names before this.
    pub end_marker: Option<String>,
    /// At most this many entries.
    pub limit: usize,
}

/// An entry of a container listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// An object.
    Object(ObjectRecord),
    /// Names under a common prefix ending in the delimiter, rolled up.
    Subdir(String),
}

impl ListQuery {
    /// The query with its limit clamped to `1..=MAX_LISTING` (absent: the maximum).
    pub fn new(
        prefix: Option<String>,
        delimiter: Option<String>,
        marker: Option<String>,
        end_marker: Option<String>,
        limit: Option<usize>,
    ) -> DomainResult<Self> {
        let delimiter = match delimiter.as_deref() {
            None | Some("") => None,
            Some(d) => {
                let mut chars = d.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some(c),
                    _ => {
                        return Err(DomainError::Invalid(
                            "delimiter must be a single character".into(),
                        ));
                    }
                }
            }
        };
        Ok(Self {
            prefix: prefix.unwrap_or_default(),
            delimiter,
            marker: marker.unwrap_or_default(),
            end_marker: end_marker.filter(|m| !m.is_empty()),
            limit: limit.unwrap_or(MAX_LISTING).clamp(1, MAX_LISTING),
        })
    }

    /// Where a scan starts: names strictly after this.
    pub fn start(&self) -> String {
        if self.marker.as_str() >= self.prefix.as_str() {
            self.marker.clone()
        } else {
            // Every name with the prefix is at or after the prefix itself.
            before(&self.prefix)
        }
    }

    /// What the listing makes of `name`: itself, or the subdir it rolls up into, with the
    /// name a scan must pass next (past the whole subdir).
    pub fn classify(&self, record: ObjectRecord) -> (Listed, String) {
        let rest = &record.name[self.prefix.len().min(record.name.len())..];
        if let Some(delimiter) = self.delimiter
            && let Some(at) = rest.find(delimiter)
        {
            let subdir = format!("{}{}", self.prefix, &rest[..at + delimiter.len_utf8()]);
            let skip = past_every_name_under(&subdir);
            return (Listed::Subdir(subdir), skip);
        }
        let next = record.name.clone();
        (Listed::Object(record), next)
    }
}

/// The greatest bound a strict "after" scan can start from and still reach `name` and
/// everything after it: `name` with its last character stepped back one, then the highest
/// character. (Names between that and `name` sort before `name`; the listing skips them.)
fn before(name: &str) -> String {
    let mut chars = name.chars();
    let Some(last) = chars.next_back() else {
        return String::new();
    };
    let stepped = match u32::from(last) {
        0 => return chars.as_str().to_owned(),
        0xE000 => '\u{D7FF}',
        code => char::from_u32(code - 1).unwrap_or('\u{0}'),
    };
    format!("{}{stepped}\u{10FFFF}", chars.as_str())
}

/// A string after every name that starts with `prefix`, and before every name that does
/// not and sorts after it: a scan continued from here skips the whole subdir.
pub fn past_every_name_under(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// Whether a scan may stop: `name` is past the query's prefix or end marker.
pub fn beyond(query: &ListQuery, name: &str) -> bool {
    !name.starts_with(&query.prefix) && name > query.prefix.as_str()
        || query.end_marker.as_deref().is_some_and(|end| name >= end)
}

/// Whether a scan passes `name` by: it sorts before the query's prefix.
pub fn short_of(query: &ListQuery, name: &str) -> bool {
    name < query.prefix.as_str()
}

/// A listing page being assembled from range scans of a container's records, in name
/// order: each scan returns records named after a bound; a name rolled up into a subdir
/// makes the next scan start past the whole subdir, so a page costs the entries it lists
/// (one scan per subdir), never the names it rolls up or the container's size.
pub struct Listing<'q> {
    query: &'q ListQuery,
    listed: Vec<Listed>,
    after: String,
    done: bool,
    /// How many records the next scan asks for: after a roll-up only one (the next name
    /// may well roll up too), doubling while scans list plain objects.
    batch: usize,
}

impl<'q> Listing<'q> {
    /// An empty page of `query`.
    pub fn new(query: &'q ListQuery) -> Self {
        Self {
            query,
            listed: Vec::new(),
            after: query.start(),
            done: false,
            batch: query.limit,
        }
    }

    /// The next scan the page needs: records named after `.0`, at most `.1` of them; `None`
    /// once the page is complete.
    pub fn next_scan(&self) -> Option<(String, usize)> {
        let want = self.query.limit.saturating_sub(self.listed.len());
        (!self.done && want > 0).then(|| (self.after.clone(), want.min(self.batch)))
    }

    /// Takes what the scan [`Listing::next_scan`] asked for returned.
    pub fn feed(&mut self, records: Vec<ObjectRecord>, wanted: usize) {
        let exhausted = records.len() < wanted;
        for record in records {
            if beyond(self.query, &record.name) {
                self.done = true;
                return;
            }
            if short_of(self.query, &record.name) {
                self.after = record.name;
                continue;
            }
            let (entry, next) = self.query.classify(record);
            self.after = next;
            let Listed::Subdir(subdir) = &entry else {
                self.listed.push(entry);
                continue;
            };
            // A subdir equal to the marker ended the previous page.
            if *subdir != self.query.marker {
                self.listed.push(entry);
            }
            // The rest of this scan is under the subdir: scan again past it.
            self.batch = 1;
            return;
        }
        self.done = exhausted;
        self.batch = self.batch.saturating_mul(2).min(self.query.limit);
    }

    /// The page.
    pub fn finish(self) -> Vec<Listed> {
        self.listed
    }
}

/// A container name from a request path, checked as task inputs check it.
pub fn container_name(name: &str) -> DomainResult<String> {
    check_container(name, "container")
}

/// The answer for a container that does not exist.
pub fn no_container(name: &str) -> DomainError {
    DomainError::NotFound(format!("Container '{name}' not found"))
}

/// The answer for deleting a container that holds objects.
pub fn not_empty(name: &str) -> DomainError {
    DomainError::Conflict(format!(
        "Container '{name}' is not empty; delete its objects first"
    ))
}

/// The answer for a write that would take the tenant's containers past `max` bytes.
pub fn quota_full(max: u64) -> DomainError {
    DomainError::QuotaExceeded(format!(
        "Upload exceeds quota: your containers may hold at most {max} bytes"
    ))
}

/// The answer for an object request on a linked container: its objects live in the
/// tenant's own storage, which tasks reach and the tenant's own tools serve.
pub fn linked_elsewhere(name: &str) -> DomainError {
    DomainError::Conflict(format!(
        "Container '{name}' is linked to your own storage: its objects are read and written there (import and export tasks reach it), not through this API"
    ))
}

/// One segment of a Static Large Object as its manifest names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The segment object.
    pub path: ObjectPath,
    /// The ETag it must have, when the manifest says.
    pub etag: Option<String>,
    /// The size it must have, when the manifest says.
    pub size_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentInput {
    path: Option<String>,
    etag: Option<String>,
    size_bytes: Option<u64>,
    range: Option<String>,
    data: Option<String>,
}

/// Parses a `multipart-manifest=put` body: a JSON array of `{path, etag, size_bytes}`,
/// each path `/<container>/<object>`. Ranges and inline data are not offered.
pub fn parse_manifest(body: &[u8]) -> DomainResult<Vec<Segment>> {
    if body.len() > MAX_MANIFEST_BYTES {
        return Err(DomainError::Invalid(format!(
            "The manifest is larger than {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    let inputs: Vec<SegmentInput> = serde_json::from_slice(body).map_err(|e| {
        DomainError::Invalid(format!(
            "The manifest must be a JSON array of {{\"path\", \"etag\", \"size_bytes\"}}: {e}"
        ))
    })?;
    if inputs.is_empty() || inputs.len() > MAX_SEGMENTS {
        return Err(DomainError::Invalid(format!(
            "A manifest names 1 to {MAX_SEGMENTS} segments, not {}",
            inputs.len()
        )));
    }
    inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| segment(index, input))
        .collect()
}

fn segment(index: usize, input: SegmentInput) -> DomainResult<Segment> {
    if input.range.is_some() || input.data.is_some() {
        return Err(DomainError::Invalid(format!(
            "Segment {index}: 'range' and 'data' segments are not supported"
        )));
    }
    let Some(path) = input.path else {
        return Err(DomainError::Invalid(format!(
            "Segment {index} has no 'path'"
        )));
    };
    let raw = path.strip_prefix('/').unwrap_or(&path);
    let field = format!("segment {index} path");
    Ok(Segment {
        path: ObjectPath::parse(raw, &field)?,
        etag: input
            .etag
            .map(|e| e.trim_matches('"').to_ascii_lowercase())
            .filter(|e| !e.is_empty()),
        size_bytes: input.size_bytes,
    })
}

/// Checks a segment's record against what the manifest says of it.
pub fn check_segment(index: usize, segment: &Segment, record: &ObjectRecord) -> DomainResult<()> {
    if record.manifest.is_some() {
        return Err(DomainError::Invalid(format!(
            "Segment {index} ({}) is itself a large object; segments must be plain objects",
            segment.path
        )));
    }
    if let Some(etag) = &segment.etag
        && *etag != record.etag
    {
        return Err(DomainError::Invalid(format!(
            "Segment {index} ({}) has ETag {}, not {etag}",
            segment.path, record.etag
        )));
    }
    if let Some(size) = segment.size_bytes
        && size != record.size
    {
        return Err(DomainError::Invalid(format!(
            "Segment {index} ({}) has {} bytes, not {size}",
            segment.path, record.size
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> ObjectRecord {
        ObjectRecord {
            name: name.into(),
            size: 1,
            etag: "e".into(),
            content_type: "application/octet-stream".into(),
            last_modified: DateTime::UNIX_EPOCH,
            manifest: None,
        }
    }

    fn query(prefix: &str, delimiter: Option<&str>, marker: &str) -> ListQuery {
        ListQuery::new(
            Some(prefix.into()),
            delimiter.map(str::to_owned),
            Some(marker.into()),
            None,
            None,
        )
        .expect("query")
    }

    #[test]
    fn names_under_a_delimiter_roll_up_and_the_scan_skips_past_them() {
        let q = query("photos/", Some("/"), "");
        let (listed, next) = q.classify(record("photos/2024/a.jpg"));
        assert_eq!(listed, Listed::Subdir("photos/2024/".into()));
        assert!(next.as_str() > "photos/2024/zzzz");
        assert!(next.as_str() < "photos/2025");
        let (listed, next) = q.classify(record("photos/b.jpg"));
        assert_eq!(listed, Listed::Object(record("photos/b.jpg")));
        assert_eq!(next, "photos/b.jpg");
    }

    #[test]
    fn a_scan_starts_just_before_the_prefix_or_at_a_later_marker() {
        for prefix in ["b", "photos/", "é", "\u{E000}"] {
            let start = query(prefix, None, "").start();
            assert!(start.as_str() < prefix, "{prefix:?}");
            let last = prefix.chars().next_back().expect("a prefix");
            let shorter = &prefix[..prefix.len() - last.len_utf8()];
            assert!(start.as_str() > shorter, "{prefix:?}: {start:?}");
        }
        assert!(query("b", None, "a").start().as_str() > "a\u{FFFF}");
        assert_eq!(query("b", None, "bc").start(), "bc");
        assert_eq!(query("", None, "").start(), "");
    }

    #[test]
    fn a_scan_stops_past_the_prefix_or_at_the_end_marker() {
        let mut q = query("b", None, "");
        assert!(!beyond(&q, "b"));
        assert!(!beyond(&q, "bz"));
        assert!(beyond(&q, "c"));
        q.end_marker = Some("bm".into());
        assert!(beyond(&q, "bm"));
        assert!(!beyond(&q, "bl"));
    }

    /// What Swift lists for `query` over `names`, computed the slow, obvious way.
    fn model(names: &std::collections::BTreeSet<String>, query: &ListQuery) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in names {
            if name.as_str() <= query.marker.as_str() || !name.starts_with(&query.prefix) {
                continue;
            }
            if query
                .end_marker
                .as_deref()
                .is_some_and(|end| name.as_str() >= end)
            {
                continue;
            }
            let rest = &name[query.prefix.len()..];
            let entry = match query.delimiter.and_then(|d| rest.find(d).map(|at| (d, at))) {
                Some((d, at)) => format!("{}{}", query.prefix, &rest[..at + d.len_utf8()]),
                None => name.clone(),
            };
            if out.last() != Some(&entry) && entry != query.marker {
                out.push(entry);
            }
        }
        out.truncate(query.limit);
        out
    }

    fn listed(names: &std::collections::BTreeSet<String>, query: &ListQuery) -> Vec<String> {
        let mut listing = Listing::new(query);
        while let Some((after, want)) = listing.next_scan() {
            let page: Vec<ObjectRecord> = names
                .range::<String, _>((
                    std::ops::Bound::Excluded(&after),
                    std::ops::Bound::Unbounded,
                ))
                .take(want)
                .map(|n| record(n))
                .collect();
            listing.feed(page, want);
        }
        listing
            .finish()
            .into_iter()
            .map(|e| match e {
                Listed::Object(o) => o.name,
                Listed::Subdir(s) => s,
            })
            .collect()
    }

    fn name() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex("[ab/é]{1,5}").expect("regex")
    }

    proptest::proptest! {
        /// Every page of every query is what Swift would list, and paging by the last
        /// entry's name walks the whole listing once.
        #[test]
        fn listings_match_the_obvious_model_and_page_through_everything(
            names in proptest::collection::btree_set(name(), 0..40),
            prefix in proptest::string::string_regex("[ab/]{0,2}").expect("regex"),
            delimiter in proptest::option::of(proptest::sample::select(vec!['/', 'a', 'é'])),
            marker in proptest::string::string_regex("[ab/é]{0,3}").expect("regex"),
            end_marker in proptest::option::of(name()),
            limit in 1usize..6,
        ) {
            let query = ListQuery::new(
                Some(prefix.clone()),
                delimiter.map(String::from),
                Some(marker),
                end_marker.clone(),
                Some(limit),
            ).expect("query");
            proptest::prop_assert_eq!(listed(&names, &query), model(&names, &query));

            let mut walked = Vec::new();
            let mut marker = String::new();
            // Each page lists at least one entry past the last: more pages than names is a loop.
            for _ in 0..=names.len() + 1 {
                let page_query = ListQuery { marker: marker.clone(), ..query.clone() };
                let page = listed(&names, &page_query);
                match page.last() {
                    Some(last) => marker = last.clone(),
                    None => break,
                }
                walked.extend(page);
            }
            let whole = ListQuery { marker: String::new(), limit: usize::MAX, ..query };
            proptest::prop_assert_eq!(walked, model(&names, &whole));
        }
    }

    #[test]
    fn a_delimiter_is_one_character_and_limits_are_clamped() {
        assert!(ListQuery::new(None, Some("//".into()), None, None, None).is_err());
        let q = ListQuery::new(None, None, None, None, Some(0)).expect("query");
        assert_eq!(q.limit, 1);
        let q = ListQuery::new(None, None, None, None, Some(1 << 40)).expect("query");
        assert_eq!(q.limit, MAX_LISTING);
    }

    #[test]
    fn manifests_name_plain_segments_by_path() {
        let segments = parse_manifest(
            br#"[{"path": "/c_segments/a/1", "etag": "\"ABC\"", "size_bytes": 3},
                 {"path": "c_segments/a/2", "etag": null, "size_bytes": null}]"#,
        )
        .expect("manifest");
        assert_eq!(segments[0].path.to_string(), "c_segments/a/1");
        assert_eq!(segments[0].etag.as_deref(), Some("abc"));
        assert_eq!(segments[1].size_bytes, None);
        for bad in [
            &b"[]"[..],
            br#"{"path": "/c/o"}"#,
            br#"[{"path": "/c/o", "range": "0-1"}]"#,
            br#"[{"path": "/../o"}]"#,
            br#"[{"etag": "x"}]"#,
            br#"[{"path": "/c/o", "extra": 1}]"#,
        ] {
            assert!(
                matches!(parse_manifest(bad), Err(DomainError::Invalid(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn segments_must_match_what_the_manifest_says() {
        let segment = |etag: Option<&str>, size| Segment {
            path: ObjectPath::new("c", "o", "t").expect("path"),
            etag: etag.map(str::to_owned),
            size_bytes: size,
        };
        let plain = record("o");
        assert!(check_segment(0, &segment(Some("e"), Some(1)), &plain).is_ok());
        assert!(check_segment(0, &segment(None, None), &plain).is_ok());
        assert!(check_segment(0, &segment(Some("f"), None), &plain).is_err());
        assert!(check_segment(0, &segment(None, Some(2)), &plain).is_err());
        let large = ObjectRecord {
            manifest: Some("[]".into()),
            ..plain
        };
        assert!(check_segment(0, &segment(None, None), &large).is_err());
    }
}
