//! Image list queries: paging, sorting and filters, parsed from query parameters.

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::error::{DomainError, DomainResult};
use crate::image::{ContainerFormat, DiskFormat, ImageId, ImageStatus, Visibility};

/// Keys an image list may be sorted by (Glance's supported set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// `name` (unnamed images sort as the empty name).
    Name,
    /// `status`.
    Status,
    /// `container_format`.
    ContainerFormat,
    /// `disk_format`.
    DiskFormat,
    /// `size` (images without data sort as -1).
    Size,
    /// `id`.
    Id,
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
}

impl SortKey {
    fn parse(raw: &str) -> DomainResult<Self> {
        Ok(match raw {
            "name" => Self::Name,
            "status" => Self::Status,
            "container_format" => Self::ContainerFormat,
            "disk_format" => Self::DiskFormat,
            "size" => Self::Size,
            "id" => Self::Id,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            other => {
                return Err(DomainError::Invalid(format!(
                    "'{other}' is not a sort key; use name, status, container_format, disk_format, size, id, created_at or updated_at"
                )));
            }
        })
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDir {
    /// Ascending.
    Asc,
    /// Descending (Glance's default).
    Desc,
}

impl SortDir {
    fn parse(raw: &str) -> DomainResult<Self> {
        match raw {
            "asc" => Ok(Self::Asc),
            "desc" => Ok(Self::Desc),
            other => Err(DomainError::Invalid(format!(
                "'{other}' is not a sort direction; use asc or desc"
            ))),
        }
    }
}

/// Which images by visibility a list covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisibilityFilter {
    /// Own images, public ones and shared ones accepted as a member; not community ones.
    Default,
    /// Everything visible, community images included.
    All,
    /// Only images of this visibility that the caller may see.
    Only(Visibility),
}

/// Which membership states a `visibility=shared` list includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatusFilter {
    /// Accepted memberships only (the default).
    Accepted,
    /// Pending only.
    Pending,
    /// Rejected only.
    Rejected,
    /// All of them.
    All,
}

/// A comparison operator on a timestamp filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOp {
    /// Later than.
    Gt,
    /// Not earlier than.
    Gte,
    /// Earlier than.
    Lt,
    /// Not later than.
    Lte,
    /// Equal.
    Eq,
    /// Not equal.
    Neq,
}

/// A parsed `GET /v2/images` query.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Page size.
    pub limit: usize,
    /// Id of the last image of the previous page.
    pub marker: Option<ImageId>,
    /// Sort order; always ends with `id` so pages are stable.
    pub sort: Vec<(SortKey, SortDir)>,
    /// Visibility scope.
    pub visibility: VisibilityFilter,
    /// Membership scope for shared images.
    pub member_status: MemberStatusFilter,
    /// `name` (one or `in:` several).
    pub names: Option<Vec<String>>,
    /// `status`.
    pub statuses: Option<Vec<ImageStatus>>,
    /// `id=in:...`.
    pub ids: Option<Vec<ImageId>>,
    /// `container_format`.
    pub container_formats: Option<Vec<ContainerFormat>>,
    /// `disk_format`.
    pub disk_formats: Option<Vec<DiskFormat>>,
    /// `owner`.
    pub owner: Option<String>,
    /// `checksum`.
    pub checksum: Option<String>,
    /// `os_hash_value`.
    pub os_hash_value: Option<String>,
    /// `tag` (all must be present).
    pub tags: Vec<String>,
    /// `size_min`.
    pub size_min: Option<u64>,
    /// `size_max`.
    pub size_max: Option<u64>,
    /// `protected`.
    pub protected: Option<bool>,
    /// `os_hidden`; when absent, hidden images are left out.
    pub os_hidden: Option<bool>,
    /// `created_at` comparisons.
    pub created_at: Vec<(TimeOp, DateTime<Utc>)>,
    /// `updated_at` comparisons.
    pub updated_at: Vec<(TimeOp, DateTime<Utc>)>,
    /// Additional-property equality filters.
    pub properties: Vec<(String, String)>,
}

/// Page-size settings.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    /// Used when no `limit` is given.
    pub default: usize,
    /// Larger limits are silently capped to this.
    pub max: usize,
}

impl Default for PageLimits {
    fn default() -> Self {
        Self {
            default: 25,
            max: 1000,
        }
    }
}

fn invalid(message: String) -> DomainError {
    DomainError::Invalid(message)
}

/// Splits `in:"a","b",c` into its values (quotes allow commas inside a value).
pub fn split_in_values(raw: &str) -> DomainResult<Vec<String>> {
    let mut values = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    for c in raw.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            ',' if !quoted => {
                values.push(std::mem::take(&mut current));
                was_quoted = false;
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err(invalid(format!("unbalanced quotes in 'in:{raw}'")));
    }
    if !current.is_empty() || was_quoted || !values.is_empty() {
        values.push(current);
    }
    if values.is_empty() {
        return Err(invalid("'in:' needs at least one value".into()));
    }
    Ok(values)
}

fn one_or_in<T>(raw: &str, parse: impl Fn(&str) -> DomainResult<T>) -> DomainResult<Vec<T>> {
    match raw.strip_prefix("in:") {
        Some(list) => split_in_values(list)?.iter().map(|v| parse(v)).collect(),
        None => Ok(vec![parse(raw)?]),
    }
}

fn boolean(key: &str, raw: &str) -> DomainResult<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(format!(
            "'{key}' must be true or false, not '{raw}'"
        ))),
    }
}

fn unsigned(key: &str, raw: &str) -> DomainResult<u64> {
    raw.parse().map_err(|_| {
        invalid(format!(
            "'{key}' must be a non-negative integer, not '{raw}'"
        ))
    })
}

/// Parses an ISO 8601 timestamp; one without an offset is taken as UTC.
pub fn parse_timestamp(raw: &str) -> DomainResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S").map(|t| t.and_utc()))
        .map_err(|_| {
            invalid(format!(
                "'{raw}' is not an ISO 8601 time such as 2024-01-31T12:00:00Z"
            ))
        })
}

fn time_filter(key: &str, raw: &str) -> DomainResult<(TimeOp, DateTime<Utc>)> {
    let (op, rest) = match raw.split_once(':') {
        Some((op @ ("gt" | "gte" | "lt" | "lte" | "eq" | "neq"), rest)) => (op, rest),
        _ => ("eq", raw),
    };
    let op = match op {
        "gt" => TimeOp::Gt,
        "gte" => TimeOp::Gte,
        "lt" => TimeOp::Lt,
        "lte" => TimeOp::Lte,
        "neq" => TimeOp::Neq,
        _ => TimeOp::Eq,
    };
    let time = parse_timestamp(rest).map_err(|e| invalid(format!("'{key}': {e}")))?;
    Ok((op, time))
}

fn sort_order(pairs: &[(String, String)]) -> DomainResult<Vec<(SortKey, SortDir)>> {
    let values = |name: &str| {
        pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    let (keys, dirs, combined) = (values("sort_key"), values("sort_dir"), values("sort"));
    let separate_form = !keys.is_empty() || !dirs.is_empty();
    if !combined.is_empty() && separate_form {
        return Err(invalid(
            "use either 'sort' or 'sort_key'/'sort_dir', not both".into(),
        ));
    }
    let mut order = Vec::new();
    if !combined.is_empty() {
        for item in combined.iter().flat_map(|s| s.split(',')).map(str::trim) {
            let (key, dir) = item.split_once(':').unwrap_or((item, "desc"));
            order.push((SortKey::parse(key)?, SortDir::parse(dir)?));
        }
    } else {
        if dirs.len() > 1 && dirs.len() != keys.len() {
            return Err(invalid("give one sort_dir, or one per sort_key".into()));
        }
        if keys.is_empty() && !dirs.is_empty() {
            order.push((SortKey::CreatedAt, SortDir::parse(dirs[0])?));
        }
        for (i, key) in keys.iter().enumerate() {
            let dir = match dirs.len() {
                0 => SortDir::Desc,
                1 => SortDir::parse(dirs[0])?,
                _ => SortDir::parse(dirs[i])?,
            };
            order.push((SortKey::parse(key)?, dir));
        }
    }
    if order.is_empty() {
        order.push((SortKey::CreatedAt, SortDir::Desc));
    }
    if !order.iter().any(|(k, _)| *k == SortKey::Id) {
        let last_dir = order.last().map_or(SortDir::Desc, |(_, d)| *d);
        order.push((SortKey::Id, last_dir));
    }
    Ok(order)
}

/// Parses the query parameters of an image list (repeated keys allowed).
pub fn parse_list_query(pairs: &[(String, String)], limits: PageLimits) -> DomainResult<ListQuery> {
    let mut query = ListQuery {
        limit: limits.default,
        marker: None,
        sort: sort_order(pairs)?,
        visibility: VisibilityFilter::Default,
        member_status: MemberStatusFilter::Accepted,
        names: None,
        statuses: None,
        ids: None,
        container_formats: None,
        disk_formats: None,
        owner: None,
        checksum: None,
        os_hash_value: None,
        tags: Vec::new(),
        size_min: None,
        size_max: None,
        protected: None,
        os_hidden: None,
        created_at: Vec::new(),
        updated_at: Vec::new(),
        properties: Vec::new(),
    };
    for (key, raw) in pairs {
        let raw = raw.as_str();
        match key.as_str() {
            "sort" | "sort_key" | "sort_dir" => {}
            "limit" => {
                let limit: i64 = raw.parse().map_err(|_| invalid(format!("'limit' must be an integer, not '{raw}'")))?;
                if limit < 0 {
                    return Err(invalid("'limit' must not be negative".into()));
                }
                query.limit = usize::try_from(limit).unwrap_or(usize::MAX).min(limits.max);
            }
            "marker" => {
                query.marker = Some(ImageId::parse(raw).map_err(|_| invalid(format!("marker '{raw}' is not an image id")))?)
            }
            "visibility" => {
                query.visibility = match raw {
                    "all" => VisibilityFilter::All,
                    other => VisibilityFilter::Only(other.parse().map_err(|_| {
                        invalid(format!("'{other}' is not a visibility; use public, private, shared, community or all"))
                    })?),
                }
            }
            "member_status" => {
                query.member_status = match raw {
                    "accepted" => MemberStatusFilter::Accepted,
                    "pending" => MemberStatusFilter::Pending,
                    "rejected" => MemberStatusFilter::Rejected,
                    "all" => MemberStatusFilter::All,
                    other => {
                        return Err(invalid(format!(
                            "'{other}' is not a member status; use accepted, pending, rejected or all"
                        )));
                    }
                }
            }
            "name" => query.names = Some(one_or_in(raw, |v| Ok(v.to_owned()))?),
            "status" => query.statuses = Some(one_or_in(raw, str::parse)?),
            "id" => query.ids = Some(one_or_in(raw, ImageId::parse)?),
            "container_format" => query.container_formats = Some(one_or_in(raw, str::parse)?),
            "disk_format" => query.disk_formats = Some(one_or_in(raw, str::parse)?),
            "owner" => query.owner = Some(raw.to_owned()),
            "checksum" => query.checksum = Some(raw.to_owned()),
            "os_hash_value" => query.os_hash_value = Some(raw.to_owned()),
            "tag" => query.tags.push(raw.to_owned()),
            "size_min" => query.size_min = Some(unsigned(key, raw)?),
            "size_max" => query.size_max = Some(unsigned(key, raw)?),
            "protected" => query.protected = Some(boolean(key, raw)?),
            "os_hidden" => query.os_hidden = Some(boolean(key, raw)?),
            "created_at" => query.created_at.push(time_filter(key, raw)?),
            "updated_at" => query.updated_at.push(time_filter(key, raw)?),
            other => query.properties.push((other.to_owned(), raw.to_owned())),
        }
    }
    Ok(query)
}

/// Whether `image` passes every filter of `query` (visibility scope aside). Adapters that
/// cannot filter in their store apply this, so both backends agree on what a filter means.
pub fn matches(query: &ListQuery, image: &crate::image::Image) -> bool {
    use crate::image::ImageStatus;
    let any = |wanted: &Option<Vec<String>>, value: Option<&str>| {
        wanted
            .as_ref()
            .is_none_or(|w| value.is_some_and(|v| w.iter().any(|x| x == v)))
    };
    let time_ok = |filters: &[(TimeOp, DateTime<Utc>)], at: &DateTime<Utc>| {
        let at = at.timestamp();
        filters.iter().all(|(op, t)| {
            let t = t.timestamp();
            match op {
                TimeOp::Gt => at > t,
                TimeOp::Gte => at >= t,
                TimeOp::Lt => at < t,
                TimeOp::Lte => at <= t,
                TimeOp::Eq => at == t,
                TimeOp::Neq => at != t,
            }
        })
    };
    !matches!(image.status, ImageStatus::Killed | ImageStatus::Deleted)
        && image.os_hidden == query.os_hidden.unwrap_or(false)
        && any(&query.names, image.name.as_deref())
        && query
            .statuses
            .as_ref()
            .is_none_or(|s| s.contains(&image.status))
        && query.ids.as_ref().is_none_or(|ids| ids.contains(&image.id))
        && query
            .container_formats
            .as_ref()
            .is_none_or(|f| image.container_format.is_some_and(|c| f.contains(&c)))
        && query
            .disk_formats
            .as_ref()
            .is_none_or(|f| image.disk_format.is_some_and(|d| f.contains(&d)))
        && query
            .owner
            .as_ref()
            .is_none_or(|o| image.owner.as_deref() == Some(o.as_str()))
        && query
            .checksum
            .as_ref()
            .is_none_or(|c| image.checksum.as_ref() == Some(c))
        && query
            .os_hash_value
            .as_ref()
            .is_none_or(|h| image.os_hash_value.as_ref() == Some(h))
        && query.tags.iter().all(|t| image.tags.contains(t))
        && query
            .size_min
            .is_none_or(|min| image.size.is_some_and(|s| s >= min))
        && query
            .size_max
            .is_none_or(|max| image.size.is_some_and(|s| s <= max))
        && query.protected.is_none_or(|p| image.protected == p)
        && time_ok(&query.created_at, &image.created_at)
        && time_ok(&query.updated_at, &image.updated_at)
        && query
            .properties
            .iter()
            .all(|(k, v)| image.properties.get(k) == Some(v))
}

/// Orders two images as a list sorted by `sort` does (unset names sort as "", unset sizes
/// as -1, times by whole seconds), ending with `id` so the order is total.
pub fn compare(
    sort: &[(SortKey, SortDir)],
    a: &crate::image::Image,
    b: &crate::image::Image,
) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for (key, dir) in sort {
        let ordering = match key {
            SortKey::Name => a
                .name
                .as_deref()
                .unwrap_or("")
                .cmp(b.name.as_deref().unwrap_or("")),
            SortKey::Status => a.status.as_str().cmp(b.status.as_str()),
            SortKey::ContainerFormat => a
                .container_format
                .map_or("", |f| f.as_str())
                .cmp(b.container_format.map_or("", |f| f.as_str())),
            SortKey::DiskFormat => a
                .disk_format
                .map_or("", |f| f.as_str())
                .cmp(b.disk_format.map_or("", |f| f.as_str())),
            SortKey::Size => a
                .size
                .map_or(-1, i128::from)
                .cmp(&b.size.map_or(-1, i128::from)),
            SortKey::Id => a.id.to_string().cmp(&b.id.to_string()),
            SortKey::CreatedAt => a.created_at.timestamp().cmp(&b.created_at.timestamp()),
            SortKey::UpdatedAt => a.updated_at.timestamp().cmp(&b.updated_at.timestamp()),
        };
        let ordering = if *dir == SortDir::Desc {
            ordering.reverse()
        } else {
            ordering
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// One page from a visible set: filter, sort, continue strictly after `after`, and keep
/// `limit + 1` images so the caller can tell whether another page exists.
pub fn page_in_memory(
    query: &ListQuery,
    mut images: Vec<crate::image::Image>,
    after: Option<&crate::image::Image>,
) -> Vec<crate::image::Image> {
    images
        .retain(|i| matches(query, i) && after.is_none_or(|m| compare(&query.sort, i, m).is_gt()));
    images.sort_by(|a, b| compare(&query.sort, a, b));
    images.dedup_by_key(|i| i.id);
    images.truncate(query.limit + 1);
    images
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> DomainResult<ListQuery> {
        let pairs: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        parse_list_query(&pairs, PageLimits::default())
    }

    fn image(name: &str, size: Option<u64>, tags: &[&str]) -> crate::image::Image {
        let mut image = crate::image::Image::new_queued(
            ImageId::random(),
            Some(crate::identity::TenantId::from_trusted("t")),
            Utc::now(),
        );
        image.name = Some(name.to_owned());
        image.size = size;
        image.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        image
    }

    #[test]
    fn in_memory_pages_filter_sort_and_continue_after_the_marker() {
        let q = parse("sort_key=name&sort_dir=asc&tag=x&limit=1").expect("parses");
        let (a, b, c) = (
            image("a", None, &["x"]),
            image("b", Some(1), &["x"]),
            image("c", None, &["y"]),
        );
        let first = page_in_memory(&q, vec![c.clone(), b.clone(), a.clone()], None);
        assert_eq!(
            first.iter().map(|i| i.id).collect::<Vec<_>>(),
            vec![a.id, b.id],
            "limit + 1, in order, filtered"
        );
        let second = page_in_memory(&q, vec![c, b.clone(), a.clone()], Some(&a));
        assert_eq!(second.iter().map(|i| i.id).collect::<Vec<_>>(), vec![b.id]);
    }

    #[test]
    fn unset_sizes_sort_before_every_set_size_and_filters_need_a_size() {
        let q = parse("sort_key=size&sort_dir=asc").expect("parses");
        let (none, small) = (image("n", None, &[]), image("s", Some(0), &[]));
        assert!(compare(&q.sort, &none, &small).is_lt());
        assert!(!matches(&parse("size_max=10").expect("parses"), &none));
        assert!(matches(&parse("size_max=10").expect("parses"), &small));
    }

    #[test]
    fn defaults_are_25_newest_first_with_id_as_tie_breaker() {
        let q = parse("").expect("parses");
        assert_eq!(q.limit, 25);
        assert_eq!(
            q.sort,
            vec![
                (SortKey::CreatedAt, SortDir::Desc),
                (SortKey::Id, SortDir::Desc)
            ]
        );
        assert_eq!(q.visibility, VisibilityFilter::Default);
    }

    #[test]
    fn limits_above_the_maximum_are_capped_and_negative_ones_refused() {
        assert_eq!(parse("limit=5000").expect("parses").limit, 1000);
        assert!(parse("limit=-1").is_err());
        assert!(parse("limit=ten").is_err());
    }

    #[test]
    fn both_sort_forms_parse_and_cannot_be_mixed() {
        let q = parse("sort=name:asc,created_at").expect("parses");
        assert_eq!(
            q.sort[..2],
            [
                (SortKey::Name, SortDir::Asc),
                (SortKey::CreatedAt, SortDir::Desc)
            ]
        );
        let q = parse("sort_key=name&sort_dir=asc&sort_key=size&sort_dir=desc").expect("parses");
        assert_eq!(
            q.sort[..2],
            [
                (SortKey::Name, SortDir::Asc),
                (SortKey::Size, SortDir::Desc)
            ]
        );
        let q = parse("sort_key=name&sort_key=size&sort_dir=asc").expect("parses");
        assert_eq!(
            q.sort[..2],
            [(SortKey::Name, SortDir::Asc), (SortKey::Size, SortDir::Asc)]
        );
        assert!(parse("sort=name&sort_key=size").is_err());
        assert!(parse("sort_key=owner").is_err());
        assert!(parse("sort_key=name&sort_dir=up").is_err());
        assert!(parse("sort_key=name&sort_dir=asc&sort_dir=desc&sort_dir=asc").is_err());
    }

    #[test]
    fn in_lists_allow_quoted_commas() {
        assert_eq!(
            split_in_values(r#""a,b",c"#).expect("parses"),
            vec!["a,b", "c"]
        );
        assert_eq!(split_in_values("x").expect("parses"), vec!["x"]);
        assert!(split_in_values(r#""open"#).is_err());
        let q = parse("status=in:active,queued&disk_format=in:raw,qcow2").expect("parses");
        assert_eq!(
            q.statuses,
            Some(vec![ImageStatus::Active, ImageStatus::Queued])
        );
        assert_eq!(
            q.disk_formats,
            Some(vec![DiskFormat::Raw, DiskFormat::Qcow2])
        );
    }

    #[test]
    fn time_filters_take_an_operator_and_an_iso_time() {
        let q = parse("created_at=gt:2024-01-01T00:00:00Z&updated_at=2024-02-01T00:00:00")
            .expect("parses");
        assert_eq!(q.created_at[0].0, TimeOp::Gt);
        assert_eq!(q.updated_at[0].0, TimeOp::Eq);
        assert!(parse("created_at=gt:yesterday").is_err());
    }

    #[test]
    fn bad_filter_values_are_refused_with_the_field_named() {
        for (query, field) in [
            ("visibility=everyone", "visibility"),
            ("member_status=maybe", "member status"),
            ("protected=yes", "protected"),
            ("size_min=-3", "size_min"),
            ("marker=abc", "marker"),
            ("status=alive", "status"),
        ] {
            let message = parse(query).expect_err(query).to_string();
            assert!(message.contains(field), "{query}: {message}");
        }
    }

    #[test]
    fn repeated_tags_all_apply_and_unknown_keys_filter_properties() {
        let q = parse("tag=a&tag=b&os_distro=ubuntu").expect("parses");
        assert_eq!(q.tags, vec!["a", "b"]);
        assert_eq!(
            q.properties,
            vec![("os_distro".to_owned(), "ubuntu".to_owned())]
        );
    }
}
