//! The single table's key schema: key and index attribute names, and how sort keys are
//! composed. The design is written down in this crate's README.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

/// An item as the SDK holds it.
pub type Item = HashMap<String, AttributeValue>;

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// The one global secondary index: lists and reverse lookups.
pub const GSI1: &str = "gsi1";
/// GSI partition key attribute.
pub const GSI1PK: &str = "gsi1pk";
/// GSI sort key attribute.
pub const GSI1SK: &str = "gsi1sk";
/// Second index: images by visibility.
pub const GSI2: &str = "gsi2";
/// Its partition key attribute.
pub const GSI2PK: &str = "gsi2pk";
/// Its sort key attribute.
pub const GSI2SK: &str = "gsi2sk";
/// Third index, sparse: images being uploaded (`SAVING`) and the tasks of each image
/// (`IMAGE_TASKS#<image id>`).
pub const GSI3: &str = "gsi3";
/// Its partition key attribute.
pub const GSI3PK: &str = "gsi3pk";
/// Its sort key attribute.
pub const GSI3SK: &str = "gsi3sk";
/// An image's sort key by name: the name (unset: empty), a NUL, the id. NUL sorts below
/// every character, so text order is (name, id) order as `listing::compare` has it.
pub const NAME_KEY: &str = "name_key";
/// An image's sort key by last update: [`by_creation`]'s form over `updated_at`.
pub const UPDATE_KEY: &str = "update_key";
/// An image's sort key by id.
pub const ID_KEY: &str = "id_key";
/// Indexes over the owner (`gsi1pk`) and visibility (`gsi2pk`) partitions in the other
/// orders a list page can be read in: (index name, partition attribute, sort attribute).
pub const ORDERED_INDEXES: [(&str, &str, &str); 6] = [
    (OWNER_BY_NAME, GSI1PK, NAME_KEY),
    (VISIBILITY_BY_NAME, GSI2PK, NAME_KEY),
    (OWNER_BY_UPDATE, GSI1PK, UPDATE_KEY),
    (VISIBILITY_BY_UPDATE, GSI2PK, UPDATE_KEY),
    (OWNER_BY_ID, GSI1PK, ID_KEY),
    (VISIBILITY_BY_ID, GSI2PK, ID_KEY),
];
/// Owner partitions by name.
pub const OWNER_BY_NAME: &str = "owner-by-name";
/// Visibility partitions by name.
pub const VISIBILITY_BY_NAME: &str = "visibility-by-name";
/// Owner partitions by last update.
pub const OWNER_BY_UPDATE: &str = "owner-by-update";
/// Visibility partitions by last update.
pub const VISIBILITY_BY_UPDATE: &str = "visibility-by-update";
/// Owner partitions by id.
pub const OWNER_BY_ID: &str = "owner-by-id";
/// Visibility partitions by id.
pub const VISIBILITY_BY_ID: &str = "visibility-by-id";

/// [`NAME_KEY`]'s value.
pub fn by_name(name: Option<&str>, id: impl std::fmt::Display) -> String {
    format!("{}\u{0}{id}", name.unwrap_or(""))
}

/// The table's TTL attribute: epoch seconds after which DynamoDB may delete the item.
pub const TTL_ATTRIBUTE: &str = "expires";

/// An index sort key in creation order, then id: zero-padded seconds keep text order the
/// same as time order.
pub fn by_creation(created_at: DateTime<Utc>, id: impl std::fmt::Display) -> String {
    format!("{:012}#{id}", created_at.timestamp())
}
