//! Shared DynamoDB plumbing: the single table's keys, item attribute helpers, error mapping
//! and table creation for local use. The design is written down in this crate's README.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use chrono::{DateTime, Utc};
use cloud_images_domain::{DomainError, DomainResult};

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
/// Third index, sparse: images being uploaded.
pub const GSI3: &str = "gsi3";
/// Its partition key attribute.
pub const GSI3PK: &str = "gsi3pk";
/// Its sort key attribute.
pub const GSI3SK: &str = "gsi3sk";
/// The table's TTL attribute: epoch seconds after which DynamoDB may delete the item.
pub const TTL_ATTRIBUTE: &str = "expires";
/// How long `ensure_table` waits for a new table to become usable.
const TABLE_READY_WAIT: Duration = Duration::from_secs(300);

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

/// An index sort key in creation order, then id: zero-padded seconds keep text order the
/// same as time order.
pub fn by_creation(created_at: DateTime<Utc>, id: impl std::fmt::Display) -> String {
    format!("{:012}#{id}", created_at.timestamp())
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

/// Maps an SDK failure to the domain, keeping the source for the logs.
pub fn failed<E, R>(context: &str, error: SdkError<E, R>) -> DomainError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    DomainError::unavailable(context.to_owned(), error)
}

/// A number attribute from an unsigned count (saturating, as DynamoDB numbers are signed here).
pub fn n_u64(value: u64) -> AttributeValue {
    n(i64::try_from(value).unwrap_or(i64::MAX))
}

/// Whether a single-item write failed on its condition expression.
pub fn condition_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    error: &SdkError<E, R>,
) -> bool {
    error.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// Whether a transaction was cancelled (a condition failed).
pub fn is_cancelled<R>(
    error: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> bool {
    error
        .as_service_error()
        .is_some_and(|e| e.is_transaction_canceled_exception())
}

/// Creates the table with its indexes and TTL if it does not exist yet: for the local binary
/// and tests; the SAM template creates it in a deployment.
pub async fn ensure_table(client: &Client, table: &str) -> DomainResult<()> {
    create_table(client, table).await?;
    // A new table accepts TTL settings (and items) only once it is ACTIVE.
    client
        .wait_until_table_exists()
        .table_name(table)
        .wait(TABLE_READY_WAIT)
        .await
        .map_err(|e| DomainError::unavailable("waiting for the DynamoDB table", e))?;
    enable_ttl(client, table).await
}

/// Turns on expiry by [`TTL_ATTRIBUTE`]. DynamoDB refuses to enable TTL that is already on
/// (its wording is not part of the API), so a refusal is fine when TTL turns out to be on.
async fn enable_ttl(client: &Client, table: &str) -> DomainResult<()> {
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(TTL_ATTRIBUTE)
        .enabled(true)
        .build()
        .map_err(|e| DomainError::unavailable("table TTL", e))?;
    let updated = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await;
    match updated {
        Ok(_) => Ok(()),
        Err(e) => {
            if ttl_is_on(client, table).await {
                Ok(())
            } else {
                Err(failed("enabling TTL on the DynamoDB table", e))
            }
        }
    }
}

/// Whether TTL is on (or turning on) for [`TTL_ATTRIBUTE`].
async fn ttl_is_on(client: &Client, table: &str) -> bool {
    let Ok(described) = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
    else {
        return false;
    };
    described.time_to_live_description().is_some_and(|d| {
        d.attribute_name() == Some(TTL_ATTRIBUTE)
            && matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            )
    })
}

/// Creates the table with its indexes; an existing table is left as it is.
async fn create_table(client: &Client, table: &str) -> DomainResult<()> {
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| DomainError::unavailable("table key", e))
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| DomainError::unavailable("table attribute", e))
    };
    let index = |name: &str, pk: &str, sk: &str| -> DomainResult<GlobalSecondaryIndex> {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(pk, KeyType::Hash)?)
            .key_schema(key(sk, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(|e| DomainError::unavailable("table index", e))
    };
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .attribute_definitions(attribute(PK)?)
        .attribute_definitions(attribute(SK)?)
        .attribute_definitions(attribute(GSI1PK)?)
        .attribute_definitions(attribute(GSI1SK)?)
        .attribute_definitions(attribute(GSI2PK)?)
        .attribute_definitions(attribute(GSI2SK)?)
        .attribute_definitions(attribute(GSI3PK)?)
        .attribute_definitions(attribute(GSI3SK)?)
        .global_secondary_indexes(index(GSI1, GSI1PK, GSI1SK)?)
        .global_secondary_indexes(index(GSI2, GSI2PK, GSI2SK)?)
        .global_secondary_indexes(index(GSI3, GSI3PK, GSI3SK)?)
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(failed("creating the DynamoDB table", e)),
    }
}

/// Reads one item by key; `consistent` asks for a strongly consistent read.
pub async fn get_item(
    client: &Client,
    table: &str,
    pk: String,
    sk: String,
    consistent: bool,
) -> DomainResult<Option<Item>> {
    let found = client
        .get_item()
        .table_name(table)
        .key(PK, s(pk))
        .key(SK, s(sk))
        .consistent_read(consistent)
        .send()
        .await
        .map_err(|e| failed("reading an item", e))?;
    Ok(found.item().cloned())
}

/// Every item of one partition of the first index, following pages (a Query, never a Scan).
pub async fn query_index(client: &Client, table: &str, partition: &str) -> DomainResult<Vec<Item>> {
    query_partition(client, table, GSI1, GSI1PK, partition).await
}

/// Every item of one partition of `index`, following pages.
pub async fn query_partition(
    client: &Client,
    table: &str,
    index: &str,
    partition_key: &str,
    partition: &str,
) -> DomainResult<Vec<Item>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", partition_key)
            .expression_attribute_values(":pk", s(partition))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| failed("querying the index", e))?;
        items.extend(page.items().iter().cloned());
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(items),
        }
    }
}
