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
/// The table's TTL attribute: epoch seconds after which DynamoDB may delete the item.
pub const TTL_ATTRIBUTE: &str = "expires";

/// An index sort key in creation order, then id: zero-padded seconds keep text order the
/// same as time order.
pub fn by_creation(created_at: DateTime<Utc>, id: impl std::fmt::Display) -> String {
    format!("{:012}#{id}", created_at.timestamp())
}
