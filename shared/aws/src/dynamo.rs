//! Shared DynamoDB plumbing: the single table's keys, item attribute helpers, error mapping
//! and table creation for local use. The design is written down in this crate's README.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConsumedCapacity, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, ReturnConsumedCapacity,
    ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
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

/// Target of the debug events [`record`] writes, one per DynamoDB call on a request path:
/// `RUST_LOG=cloud_images_aws::capacity=debug` shows them.
pub const CAPACITY_TARGET: &str = "cloud_images_aws::capacity";

/// What every request-path call asks DynamoDB to report: the capacity it consumed.
pub const CONSUMED: ReturnConsumedCapacity = ReturnConsumedCapacity::Total;

/// A read's size-based figure: how many items it returned, their bytes, and the read units
/// DynamoDB's documented rules charge for them.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ReadCost {
    /// Items returned.
    pub items: usize,
    /// Their summed size by DynamoDB's item-size rules.
    pub bytes: usize,
    /// Read units by the documented rules: 4 KB units, half a unit each when eventually
    /// consistent; GetItem and BatchGetItem round each item up, Query rounds the sum.
    pub units: f64,
}

/// The output of a DynamoDB call on a request path: the capacity it reports consuming and,
/// for reads, the items it returned.
pub trait Consumption {
    /// The operation's name, as DynamoDB spells it.
    const OPERATION: &'static str;
    /// Whether the operation reads (its reported units are read units) or writes.
    const READS: bool;
    /// The consumed capacity the response carries (none when the service did not report it).
    fn consumed(&self) -> Vec<&ConsumedCapacity>;
    /// For reads, the documented charge of the items returned.
    fn read_cost(&self, _consistent: bool) -> ReadCost {
        ReadCost::default()
    }
}

fn read_unit_price(consistent: bool) -> f64 {
    if consistent { 1.0 } else { 0.5 }
}

/// Read units of `bytes` read at once: 4 KB units (at least one).
fn read_units(bytes: usize, consistent: bool) -> f64 {
    bytes.div_ceil(4096).max(1) as f64 * read_unit_price(consistent)
}

/// Read cost of items each charged on its own (GetItem, BatchGetItem).
fn each_item<'a>(items: impl Iterator<Item = &'a Item>, consistent: bool) -> ReadCost {
    items.fold(ReadCost::default(), |cost, item| {
        let bytes = item_size(item);
        ReadCost {
            items: cost.items + 1,
            bytes: cost.bytes + bytes,
            units: cost.units + read_units(bytes, consistent),
        }
    })
}

impl Consumption for GetItemOutput {
    const OPERATION: &'static str = "GetItem";
    const READS: bool = true;
    fn consumed(&self) -> Vec<&ConsumedCapacity> {
        self.consumed_capacity().into_iter().collect()
    }
    fn read_cost(&self, consistent: bool) -> ReadCost {
        match self.item() {
            Some(item) => each_item(std::iter::once(item), consistent),
            // A miss is still charged one unit.
            None => ReadCost {
                units: read_unit_price(consistent),
                ..ReadCost::default()
            },
        }
    }
}

impl Consumption for QueryOutput {
    const OPERATION: &'static str = "Query";
    const READS: bool = true;
    fn consumed(&self) -> Vec<&ConsumedCapacity> {
        self.consumed_capacity().into_iter().collect()
    }
    fn read_cost(&self, consistent: bool) -> ReadCost {
        let bytes = self.items().iter().map(item_size).sum();
        ReadCost {
            items: self.items().len(),
            bytes,
            units: read_units(bytes, consistent),
        }
    }
}

impl Consumption for BatchGetItemOutput {
    const OPERATION: &'static str = "BatchGetItem";
    const READS: bool = true;
    fn consumed(&self) -> Vec<&ConsumedCapacity> {
        self.consumed_capacity().iter().collect()
    }
    fn read_cost(&self, consistent: bool) -> ReadCost {
        let items = self
            .responses()
            .into_iter()
            .flat_map(|r| r.values().flatten());
        each_item(items, consistent)
    }
}

impl Consumption for PutItemOutput {
    const OPERATION: &'static str = "PutItem";
    const READS: bool = false;
    fn consumed(&self) -> Vec<&ConsumedCapacity> {
        self.consumed_capacity().into_iter().collect()
    }
}

impl Consumption for DeleteItemOutput {
    const OPERATION: &'static str = "DeleteItem";
    const READS: bool = false;
    fn consumed(&self) -> Vec<&ConsumedCapacity> {
        self.consumed_capacity().into_iter().collect()
    }
}

impl Consumption for TransactWriteItemsOutput {
    const OPERATION: &'static str = "TransactWriteItems";
    const READS: bool = false;
    fn consumed(&self) -> Vec<&ConsumedCapacity> {
        self.consumed_capacity().iter().collect()
    }
}

/// The (read, write) units a response reports. Every operation used here either reads or
/// writes (a transaction's condition checks are write units too), so the total, table and
/// indexes together, counts as the operation's kind.
fn reported_units(entries: &[&ConsumedCapacity], reads: bool) -> (f64, f64) {
    let total: f64 = entries
        .iter()
        .map(|c| {
            c.capacity_units().unwrap_or_else(|| {
                c.read_capacity_units().unwrap_or(0.0) + c.write_capacity_units().unwrap_or(0.0)
            })
        })
        .sum();
    if reads { (total, 0.0) } else { (0.0, total) }
}

/// Records one DynamoDB call at debug level on [`CAPACITY_TARGET`]: operation, table, index,
/// whether it succeeded, the read and write units the response reports (`rcu`, `wcu`; a
/// failed call reports none here, though DynamoDB charges a failed conditional write), and
/// for reads the items returned with their documented charge (`rcu_by_size`). Nothing is
/// computed unless the event is enabled.
pub fn record<T: Consumption, E>(
    table: &str,
    index: Option<&str>,
    consistent: bool,
    outcome: &Result<T, E>,
) {
    if !tracing::enabled!(target: CAPACITY_TARGET, tracing::Level::DEBUG) {
        return;
    }
    let (ok, (rcu, wcu), cost) = match outcome {
        Ok(output) => (
            true,
            reported_units(&output.consumed(), T::READS),
            if T::READS {
                output.read_cost(consistent)
            } else {
                ReadCost::default()
            },
        ),
        Err(_) => (false, (0.0, 0.0), ReadCost::default()),
    };
    tracing::debug!(
        target: CAPACITY_TARGET,
        operation = T::OPERATION,
        table,
        index = index.unwrap_or(""),
        consistent,
        ok,
        rcu,
        wcu,
        items = cost.items,
        item_bytes = cost.bytes,
        rcu_by_size = cost.units,
        "dynamodb call"
    );
}

/// An item's size by DynamoDB's rules: each attribute's name plus its value.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number_size(number),
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(values) => 3 + values.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// A number's size: one byte per two significant digits, plus one (plus one if negative).
fn number_size(number: &str) -> usize {
    let mantissa = number.split(['e', 'E']).next().unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    1 + significant.div_ceil(2) + usize::from(number.starts_with('-'))
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
        .return_consumed_capacity(CONSUMED)
        .send()
        .await;
    record(table, None, consistent, &found);
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
            .return_consumed_capacity(CONSUMED)
            .send()
            .await;
        record(table, Some(index), false, &page);
        let page = page.map_err(|e| failed("querying the index", e))?;
        items.extend(page.items().iter().cloned());
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(items),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::query::QueryOutput;
    use aws_sdk_dynamodb::types::ConsumedCapacity;

    use super::*;

    fn sized(bytes: usize) -> Item {
        // "pk" (2) + "v" (1) + "a" (1) + the padding.
        Item::from([
            (PK.to_owned(), s("a")),
            ("v".to_owned(), s("x".repeat(bytes - 4))),
        ])
    }

    #[test]
    fn item_sizes_follow_dynamodb_rules() {
        assert_eq!(item_size(&sized(3000)), 3000);
        assert_eq!(number_size("0"), 1);
        assert_eq!(number_size("123"), 3);
        assert_eq!(number_size("-1200"), 3);
        assert_eq!(number_size("1700000000"), 2);
        let nested = Item::from([(
            "m".to_owned(),
            AttributeValue::M(HashMap::from([(
                "k".to_owned(),
                AttributeValue::Bool(true),
            )])),
        )]);
        assert_eq!(item_size(&nested), 1 + 3 + 1 + 1 + 1);
    }

    #[test]
    fn reads_cost_four_kilobyte_units() {
        let get = GetItemOutput::builder().item("pk", s("a")).build();
        assert_eq!(get.read_cost(true).units, 1.0);
        assert_eq!(GetItemOutput::builder().build().read_cost(false).units, 0.5);
        // A Query rounds the sum: 3 × 3000 bytes = 3 units, not 3 × 1.
        let query = QueryOutput::builder()
            .items(sized(3000))
            .items(sized(3000))
            .items(sized(3000))
            .build();
        let cost = query.read_cost(false);
        assert_eq!((cost.items, cost.bytes, cost.units), (3, 9000, 1.5));
        assert_eq!(query.read_cost(true).units, 3.0);
    }

    #[test]
    fn reported_units_count_as_the_operations_kind() {
        let total = ConsumedCapacity::builder()
            .capacity_units(5.0)
            .write_capacity_units(4.0)
            .build();
        assert_eq!(reported_units(&[&total], false), (0.0, 5.0));
        let read = ConsumedCapacity::builder().capacity_units(0.5).build();
        assert_eq!(reported_units(&[&read], true), (0.5, 0.0));
    }
}
