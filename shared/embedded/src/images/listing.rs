//! A list page. Each place a viewer's images come from (its own per visibility, public,
//! community, its memberships) that holds anything is read by its own `SELECT` in the order
//! of an index that matches the sort, stopping at `limit + 1` rows; the rows of those arms
//! are merged in Rust and cut to the page. A page so reads O(limit) rows, not the viewer's
//! whole visible set, for one sort key (and the `id` tie-breaker) in either direction. Only
//! memberships have no index in sort order: that arm reads the viewer's memberships (few,
//! for a tenant).

use chrono::{DateTime, Utc};
use cloud_images_domain::image::{Image, Visibility};
use cloud_images_domain::listing::{
    self, ListQuery, MemberStatusFilter, SortDir, SortKey, TimeOp, VisibilityFilter,
};
use cloud_images_domain::ports::Viewer;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, Rows, StatementStatus, params_from_iter};

use super::{COLUMNS, image_from, int, seconds};
use crate::error::EmbeddedError;

/// Every sort key, with the expression it orders by. The schema has an index
/// `(owner, expression, id)` for each, and `(visibility, expression, id)` over the public
/// and community images; a test checks each list reads through them. Only `created_at`
/// has a visibility index over private and shared images too: an administrator's list of
/// everything in another order sorts those.
pub(crate) const SORTS: [(SortKey, &str); 8] = [
    (SortKey::Name, "COALESCE(name, '')"),
    (SortKey::Status, "status"),
    (SortKey::ContainerFormat, "COALESCE(container_format, '')"),
    (SortKey::DiskFormat, "COALESCE(disk_format, '')"),
    (SortKey::Size, "COALESCE(size, -1)"),
    (SortKey::Id, "id"),
    (SortKey::CreatedAt, "created_at"),
    (SortKey::UpdatedAt, "updated_at"),
];

/// The SQL expression a sort key orders by; NULLs are mapped to a value so keyset
/// comparisons stay total.
fn sort_expression(key: SortKey) -> &'static str {
    SORTS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("id", |(_, expression)| expression)
}

/// The marker image's value for a sort key, matching [`sort_expression`].
fn sort_value(image: &Image, key: SortKey) -> Sql {
    match key {
        SortKey::Name => Sql::Text(image.name.clone().unwrap_or_default()),
        SortKey::Status => Sql::Text(image.status.to_string()),
        SortKey::ContainerFormat => Sql::Text(
            image
                .container_format
                .map(|f| f.to_string())
                .unwrap_or_default(),
        ),
        SortKey::DiskFormat => {
            Sql::Text(image.disk_format.map(|f| f.to_string()).unwrap_or_default())
        }
        SortKey::Size => image.size.map_or(Sql::Integer(-1), |s| int(Some(s))),
        SortKey::Id => Sql::Text(image.id.to_string()),
        SortKey::CreatedAt => seconds(&image.created_at),
        SortKey::UpdatedAt => seconds(&image.updated_at),
    }
}

/// The keys of the sort that can decide an order: those up to the unique `id`, less those a
/// filter pins to one value. Without them the order is one an index holds (SQLite does not
/// see on its own that `expression = ?` leaves an index on `(expression, id)` in id order).
fn deciding(query: &ListQuery) -> Vec<(SortKey, SortDir)> {
    let one = |values: Option<usize>| values == Some(1);
    let pinned = |key: &SortKey| match key {
        SortKey::Name => one(query.names.as_ref().map(Vec::len)),
        SortKey::Status => one(query.statuses.as_ref().map(Vec::len)),
        SortKey::ContainerFormat => one(query.container_formats.as_ref().map(Vec::len)),
        SortKey::DiskFormat => one(query.disk_formats.as_ref().map(Vec::len)),
        _ => false,
    };
    let end = query
        .sort
        .iter()
        .position(|(k, _)| *k == SortKey::Id)
        .map_or(query.sort.len(), |i| i + 1);
    query.sort[..end]
        .iter()
        .filter(|(key, _)| !pinned(key))
        .copied()
        .collect()
}

/// Accumulates `WHERE` clauses and their parameters.
#[derive(Default, Clone)]
struct Filter {
    clauses: Vec<String>,
    params: Vec<Sql>,
}

impl Filter {
    fn add(&mut self, clause: impl Into<String>, params: impl IntoIterator<Item = Sql>) {
        self.clauses.push(clause.into());
        self.params.extend(params);
    }

    /// `column IN (..)`; with one value `column = ?`, which SQLite (unlike a one-item `IN`)
    /// knows leaves the rows of an index on `(column, id)` in id order.
    fn any_of(&mut self, column: &str, values: impl IntoIterator<Item = String>) {
        let values: Vec<Sql> = values.into_iter().map(Sql::Text).collect();
        if values.len() == 1 {
            self.add(format!("{column} = ?"), values);
            return;
        }
        let marks = vec!["?"; values.len()].join(", ");
        self.add(format!("{column} IN ({marks})"), values);
    }
}

// A unary `+` keeps SQLite from answering a term with an index: in an arm, the index to
// read is the one its partition term (owner or visibility) leads, in sort order.
/// One place a viewer's images come from.
enum Arm<'a> {
    /// Images the viewer owns of one visibility (each its own arm, so that a scope of one
    /// visibility reads only those).
    Owned(&'a str, Visibility),
    /// Images of a visibility; with a tenant, not those it owns (its own arm has them).
    Visible(Visibility, Option<&'a str>),
    /// Shared images of others the viewer is a member of, with one of these statuses.
    Member(&'a str, Vec<&'static str>),
}

impl Arm<'_> {
    fn clause(&self, filter: &mut Filter) {
        match self {
            Arm::Owned(owner, visibility) => {
                filter.add("owner = ?", [text(owner)]);
                filter.add(format!("visibility = '{}'", visibility.as_str()), []);
            }
            Arm::Visible(visibility, not_of) => {
                // A literal (one of four words), so SQLite sees it meets the condition of
                // the partial indexes on public and community images.
                filter.add(format!("visibility = '{}'", visibility.as_str()), []);
                if let Some(tenant) = not_of {
                    filter.add("+owner IS NOT ?", [text(tenant)]);
                }
            }
            Arm::Member(tenant, statuses) => {
                let marks = vec!["?"; statuses.len()].join(", ");
                let mut params = vec![text(tenant)];
                params.extend(statuses.iter().map(|s| text(s)));
                params.push(text(tenant));
                filter.add(
                    format!(
                        "id IN (SELECT image_id FROM members WHERE member_id = ? AND status IN ({marks})) \
                         AND +visibility = 'shared' AND +owner IS NOT ?"
                    ),
                    params,
                );
            }
        }
    }
}

impl Arm<'_> {
    /// An expression true when the arm can hold any row at all, for the arms where that is
    /// one index seek: a tenant's images of one visibility, its memberships.
    fn probe(&self) -> Option<(String, Vec<Sql>)> {
        match self {
            Arm::Owned(owner, visibility) => Some((
                format!(
                    "EXISTS (SELECT 1 FROM images WHERE owner = ? AND visibility = '{}')",
                    visibility.as_str()
                ),
                vec![text(owner)],
            )),
            Arm::Member(tenant, statuses) => {
                let marks = vec!["?"; statuses.len()].join(", ");
                let mut params = vec![text(tenant)];
                params.extend(statuses.iter().map(|s| text(s)));
                Some((
                    format!(
                        "EXISTS (SELECT 1 FROM members WHERE member_id = ? AND status IN ({marks}))"
                    ),
                    params,
                ))
            }
            Arm::Visible(..) => None,
        }
    }
}

/// The arms that may hold rows: one statement asks every probe at once, and each empty arm
/// then costs nothing (most tenants' images are all of one visibility, so four of a
/// default page's six statements went to arms with nothing in them).
/// Also returns the VM steps the probe took.
fn occupied<'a>(
    conn: &Connection,
    arms: Vec<Arm<'a>>,
) -> Result<(Vec<Arm<'a>>, u64), EmbeddedError> {
    let probes: Vec<(usize, (String, Vec<Sql>))> = arms
        .iter()
        .enumerate()
        .filter_map(|(i, arm)| arm.probe().map(|probe| (i, probe)))
        .collect();
    if arms.len() < 2 || probes.is_empty() {
        return Ok((arms, 0));
    }
    let sql = format!(
        "SELECT {}",
        probes
            .iter()
            .map(|(_, (e, _))| e.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let params: Vec<Sql> = probes.iter().flat_map(|(_, (_, p))| p.clone()).collect();
    let mut statement = conn.prepare_cached(&sql)?;
    let found: Vec<bool> = statement.query_row(params_from_iter(params), |row| {
        (0..probes.len()).map(|i| row.get(i)).collect()
    })?;
    let steps = u64::try_from(statement.get_status(StatementStatus::VmStep)).unwrap_or(0);
    let empty: Vec<usize> = probes
        .iter()
        .zip(found)
        .filter(|(_, found)| !found)
        .map(|((i, _), _)| *i)
        .collect();
    let occupied = arms
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !empty.contains(i))
        .map(|(_, arm)| arm)
        .collect();
    Ok((occupied, steps))
}

fn text(s: &str) -> Sql {
    Sql::Text(s.to_owned())
}

fn member_statuses(filter: MemberStatusFilter) -> Vec<&'static str> {
    match filter {
        MemberStatusFilter::Accepted => vec!["accepted"],
        MemberStatusFilter::Pending => vec!["pending"],
        MemberStatusFilter::Rejected => vec!["rejected"],
        MemberStatusFilter::All => vec!["pending", "accepted", "rejected"],
    }
}

/// Where the images `viewer` may list under `query`'s scope come from: its own, public ones,
/// shared ones it accepted (or, with `visibility=shared`, those of the asked member status)
/// and community ones when asked. Administrators see every visibility.
fn arms<'a>(viewer: &'a Viewer, query: &ListQuery) -> Vec<Arm<'a>> {
    use Visibility::{Community, Private, Public, Shared};
    if viewer.is_admin {
        return match query.visibility {
            VisibilityFilter::Only(v) => vec![Arm::Visible(v, None)],
            _ => [Public, Private, Shared, Community]
                .map(|v| Arm::Visible(v, None))
                .into(),
        };
    }
    let tenant = viewer.tenant.as_str();
    match query.visibility {
        VisibilityFilter::Default => vec![
            Arm::Owned(tenant, Private),
            Arm::Owned(tenant, Shared),
            Arm::Owned(tenant, Public),
            Arm::Owned(tenant, Community),
            Arm::Visible(Public, Some(tenant)),
            Arm::Member(tenant, member_statuses(query.member_status)),
        ],
        VisibilityFilter::All => vec![
            Arm::Owned(tenant, Private),
            Arm::Owned(tenant, Shared),
            Arm::Owned(tenant, Public),
            Arm::Owned(tenant, Community),
            Arm::Visible(Public, Some(tenant)),
            Arm::Visible(Community, Some(tenant)),
            Arm::Member(tenant, member_statuses(query.member_status)),
        ],
        VisibilityFilter::Only(v @ (Public | Community)) => vec![Arm::Visible(v, None)],
        VisibilityFilter::Only(Private) => vec![Arm::Owned(tenant, Private)],
        VisibilityFilter::Only(Shared) => vec![
            Arm::Owned(tenant, Shared),
            Arm::Member(tenant, member_statuses(query.member_status)),
        ],
    }
}

fn time_clause(filter: &mut Filter, column: &str, op: TimeOp, at: &DateTime<Utc>) {
    let op = match op {
        TimeOp::Gt => ">",
        TimeOp::Gte => ">=",
        TimeOp::Lt => "<",
        TimeOp::Lte => "<=",
        TimeOp::Eq => "=",
        TimeOp::Neq => "<>",
    };
    filter.add(format!("{column} {op} ?"), [seconds(at)]);
}

fn filters(filter: &mut Filter, query: &ListQuery) {
    filter.add("status NOT IN ('killed', 'deleted')", []);
    filter.add(
        "os_hidden = ?",
        [Sql::Integer(query.os_hidden.unwrap_or(false).into())],
    );
    // Filters on a sort key's expression (not its column) let an index on that expression
    // both find and order the rows: sorting by name among `name=x` reads just those.
    if let Some(names) = &query.names {
        filter.any_of(sort_expression(SortKey::Name), names.iter().cloned());
    }
    if let Some(statuses) = &query.statuses {
        filter.any_of("status", statuses.iter().map(ToString::to_string));
    }
    if let Some(ids) = &query.ids {
        filter.any_of("id", ids.iter().map(ToString::to_string));
    }
    if let Some(formats) = &query.container_formats {
        let expression = sort_expression(SortKey::ContainerFormat);
        filter.any_of(expression, formats.iter().map(ToString::to_string));
    }
    if let Some(formats) = &query.disk_formats {
        let expression = sort_expression(SortKey::DiskFormat);
        filter.any_of(expression, formats.iter().map(ToString::to_string));
    }
    for (column, value) in [
        ("owner", &query.owner),
        ("checksum", &query.checksum),
        ("os_hash_value", &query.os_hash_value),
    ] {
        if let Some(value) = value {
            filter.add(format!("{column} = ?"), [Sql::Text(value.clone())]);
        }
    }
    for tag in &query.tags {
        filter.add(
            "EXISTS (SELECT 1 FROM json_each(images.tags) WHERE value = ?)",
            [Sql::Text(tag.clone())],
        );
    }
    // Images without data (size -1 to the sort) match no size filter.
    let size = sort_expression(SortKey::Size);
    if query.size_min.is_some() || query.size_max.is_some() {
        filter.add(format!("{size} >= ?"), [int(query.size_min.or(Some(0)))]);
    }
    if let Some(max) = query.size_max {
        filter.add(format!("{size} <= ?"), [int(Some(max))]);
    }
    if let Some(protected) = query.protected {
        filter.add("protected = ?", [Sql::Integer(protected.into())]);
    }
    for (op, at) in &query.created_at {
        time_clause(filter, "created_at", *op, at);
    }
    for (op, at) in &query.updated_at {
        time_clause(filter, "updated_at", *op, at);
    }
    for (key, value) in &query.properties {
        filter.add(
            "EXISTS (SELECT 1 FROM json_each(images.properties) WHERE key = ? AND value = ?)",
            [Sql::Text(key.clone()), Sql::Text(value.clone())],
        );
    }
}

/// Rows strictly after the marker in the query's order: for sort keys k1..kn,
/// Rows strictly after the marker in the query's order. In one direction that is the row
/// value `(k1, .., id) > (v1, .., vid)` (`<` descending), which SQLite answers with an index
/// range; mixed directions spell it out: `(k1 ▷ v1) OR (k1 = v1 AND k2 ▷ v2) OR ...`.
fn after_marker(filter: &mut Filter, sort: &[(SortKey, SortDir)], marker: &Image) {
    let values = sort.iter().map(|(k, _)| sort_value(marker, *k));
    let one_direction = sort.windows(2).all(|w| w[0].1 == w[1].1);
    let beyond = |dir: &SortDir| if *dir == SortDir::Asc { ">" } else { "<" };
    if one_direction {
        let keys: Vec<&str> = sort.iter().map(|(k, _)| sort_expression(*k)).collect();
        let marks = vec!["?"; sort.len()].join(", ");
        let op = sort.first().map_or(">", |(_, dir)| beyond(dir));
        filter.add(format!("({}) {op} ({marks})", keys.join(", ")), values);
        return;
    }
    let mut alternatives = Vec::new();
    let mut params = Vec::new();
    for (i, (key, dir)) in sort.iter().enumerate() {
        let mut terms = Vec::new();
        for (earlier, _) in &sort[..i] {
            terms.push(format!("{} = ?", sort_expression(*earlier)));
            params.push(sort_value(marker, *earlier));
        }
        terms.push(format!("{} {} ?", sort_expression(*key), beyond(dir)));
        params.push(sort_value(marker, *key));
        alternatives.push(format!("({})", terms.join(" AND ")));
    }
    filter.add(format!("({})", alternatives.join(" OR ")), params);
}

fn direction(dir: SortDir) -> &'static str {
    if dir == SortDir::Asc { "ASC" } else { "DESC" }
}

/// One statement per arm (and its parameters): the arm's first `limit + 1` rows past the
/// marker, in the query's order.
fn arm_statements(
    arms: &[Arm<'_>],
    query: &ListQuery,
    sort: &[(SortKey, SortDir)],
    after: Option<&Image>,
) -> Vec<(String, Vec<Sql>)> {
    let mut common = Filter::default();
    filters(&mut common, query);
    if let Some(marker) = after {
        after_marker(&mut common, sort, marker);
    }
    let order: Vec<String> = sort
        .iter()
        .map(|(k, d)| format!("{} {}", sort_expression(*k), direction(*d)))
        .collect();
    let limit = int(Some(query.limit as u64 + 1));
    arms.iter()
        .map(|arm| {
            let mut filter = Filter::default();
            arm.clause(&mut filter);
            filter.clauses.extend(common.clauses.iter().cloned());
            filter.params.extend(common.params.iter().cloned());
            filter.params.push(limit.clone());
            let sql = format!(
                "SELECT {COLUMNS} FROM images WHERE {} ORDER BY {} LIMIT ?",
                filter.clauses.join(" AND "),
                order.join(", ")
            );
            (sql, filter.params)
        })
        .collect()
}

/// A page and what reading it cost in SQLite virtual-machine steps (for tests: unlike
/// time, the count is the same on every run).
pub(crate) struct Page {
    pub images: Vec<Image>,
    pub vm_steps: u64,
}

/// One page, and one image more when there are more: each arm's statement stepped only as
/// far as the merge of their ordered rows needs (SQLite sorting the arms again, as a
/// compound `SELECT` does, cost more than the reads).
pub(crate) fn read_page(
    conn: &Connection,
    viewer: &Viewer,
    query: &ListQuery,
    after: Option<&Image>,
) -> Result<Page, EmbeddedError> {
    // One snapshot for the probe and every arm.
    let snapshot = conn.unchecked_transaction()?;
    let sort = deciding(query);
    let (sources, probe_steps) = occupied(&snapshot, arms(viewer, query))?;
    let arms = arm_statements(&sources, query, &sort, after);
    let mut statements = Vec::with_capacity(arms.len());
    for (sql, _) in &arms {
        statements.push(snapshot.prepare_cached(sql)?);
    }
    let mut images = Vec::new();
    {
        let mut cursors = Vec::with_capacity(arms.len());
        for (statement, (_, params)) in statements.iter_mut().zip(&arms) {
            let mut rows = statement.query(params_from_iter(params))?;
            let head = next_image(&mut rows)?;
            cursors.push((rows, head));
        }
        while images.len() <= query.limit {
            let first = cursors
                .iter()
                .enumerate()
                .filter_map(|(i, (_, head))| head.as_ref().map(|image| (i, image)))
                .min_by(|(_, a), (_, b)| listing::compare(&sort, a, b))
                .map(|(i, _)| i);
            let Some(i) = first else { break };
            let (rows, head) = &mut cursors[i];
            let next = next_image(rows)?;
            images.extend(std::mem::replace(head, next));
        }
    }
    let vm_steps = probe_steps
        + statements
            .iter()
            .map(|s| u64::try_from(s.get_status(StatementStatus::VmStep)).unwrap_or(0))
            .sum::<u64>();
    drop(statements);
    snapshot.commit()?;
    Ok(Page { images, vm_steps })
}

fn next_image(rows: &mut Rows<'_>) -> Result<Option<Image>, EmbeddedError> {
    rows.next()?.map(image_from).transpose()
}
