//! Item mapping: attribute values to and from the domain's fields.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use cloud_images_domain::{DomainError, DomainResult};

use super::schema::Item;

/// A string attribute.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute.
pub fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Reads a required string attribute.
pub fn get_s(item: &Item, name: &str) -> DomainResult<String> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        _ => Err(corrupt(name)),
    }
}

/// Reads an optional string attribute.
pub fn get_opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    }
}

/// Reads a required number attribute.
pub fn get_n(item: &Item, name: &str) -> DomainResult<i64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().map_err(|_| corrupt(name)),
        _ => Err(corrupt(name)),
    }
}

/// Reads a time stored as epoch seconds.
pub fn get_time(item: &Item, name: &str) -> DomainResult<DateTime<Utc>> {
    DateTime::from_timestamp(get_n(item, name)?, 0).ok_or_else(|| corrupt(name))
}

fn corrupt(name: &str) -> DomainError {
    DomainError::unavailable(
        "reading a DynamoDB item",
        format!("attribute '{name}' is missing or malformed"),
    )
}

/// A number attribute from an unsigned count (saturating, as DynamoDB numbers are signed here).
pub fn n_u64(value: u64) -> AttributeValue {
    n(i64::try_from(value).unwrap_or(i64::MAX))
}
