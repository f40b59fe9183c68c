//! DynamoDB plumbing shared by the adapters: the single table's key schema, item mapping,
//! capacity accounting, table creation, error mapping and the two read shapes every
//! adapter uses. The design is written down in this crate's README.

mod attributes;
mod capacity;
pub mod events;
mod schema;
mod table;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use cloud_images_domain::{DomainError, DomainResult};

pub use attributes::{get_n, get_opt_s, get_s, get_time, n, n_u64, s};
pub use capacity::{CAPACITY_TARGET, CapacityRecorder};
pub use schema::*;
pub use table::ensure_table;

/// Maps an SDK failure to the domain, keeping the source for the logs.
pub fn failed<E, R>(context: &str, error: SdkError<E, R>) -> DomainError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    DomainError::unavailable(context.to_owned(), error)
}

/// A request the SDK's builder refused (a required field missing), for the domain.
pub fn building(e: impl std::error::Error + Send + Sync + 'static) -> DomainError {
    DomainError::unavailable("building a DynamoDB request", e)
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
        .await;
    let found = found.map_err(|e| failed("reading an item", e))?;
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
    let all = query_partition_up_to(client, table, index, partition_key, partition, usize::MAX);
    Ok(all.await?.unwrap_or_default())
}

/// Every item of one partition of `index`, following pages, or `None` as soon as it holds
/// more than `at_most` (the rest is not read).
pub async fn query_partition_up_to(
    client: &Client,
    table: &str,
    index: &str,
    partition_key: &str,
    partition: &str,
    at_most: usize,
) -> DomainResult<Option<Vec<Item>>> {
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
            // Never past the first item over the bound.
            .set_limit(i32::try_from(at_most.saturating_sub(items.len()).saturating_add(1)).ok())
            .send()
            .await;
        let page = page.map_err(|e| failed("querying the index", e))?;
        items.extend(page.items().iter().cloned());
        if items.len() > at_most {
            return Ok(None);
        }
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(Some(items)),
        }
    }
}
