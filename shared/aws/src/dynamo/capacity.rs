//! Capacity accounting: every request-path call reports the read and write units it
//! consumed, and reads the documented charge of what they returned.

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextMut, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::delete_item::{DeleteItemInput, DeleteItemOutput};
use aws_sdk_dynamodb::operation::get_item::{GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsInput, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConsumedCapacity, ReturnConsumedCapacity, TransactWriteItem,
};
use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};
use aws_smithy_types::config_bag::{Storable, StoreReplace};

use super::schema::Item;

/// Target of the debug events [`CapacityRecorder`] writes, one per DynamoDB call:
/// `RUST_LOG=cloud_images_aws::capacity=debug` shows them.
pub const CAPACITY_TARGET: &str = "cloud_images_aws::capacity";

/// What every call asks DynamoDB to report: the capacity it consumed.
const CONSUMED: ReturnConsumedCapacity = ReturnConsumedCapacity::Total;

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

/// Asks every DynamoDB call of the client it is installed on to report its consumed
/// capacity, and records each call at debug level on [`CAPACITY_TARGET`]: operation, table,
/// index, whether it succeeded, the read and write units the response reports (`rcu`,
/// `wcu`; a failed call reports none here, though DynamoDB charges a failed conditional
/// write), and for reads the items returned with their documented charge (`rcu_by_size`).
/// Being on the client, no call site can forget either half. Nothing is computed unless the
/// event is enabled.
#[derive(Debug)]
pub struct CapacityRecorder;

/// What the recorder knows of a call before it is sent (its input is gone afterwards).
#[derive(Debug, Clone)]
struct Call {
    operation: &'static str,
    table: String,
    index: Option<String>,
    consistent: bool,
}

impl Storable for Call {
    type Storer = StoreReplace<Self>;
}

fn table_of(name: &Option<String>) -> String {
    name.clone().unwrap_or_default()
}

/// Sets `ReturnConsumedCapacity` on the operations this crate calls and says what they are;
/// other calls (table administration) are not request-path calls and are left alone.
fn prepare(input: &mut Input) -> Option<Call> {
    let call = |operation, table, index, consistent| Call {
        operation,
        table,
        index,
        consistent,
    };
    if let Some(get) = input.downcast_mut::<GetItemInput>() {
        get.return_consumed_capacity = Some(CONSUMED);
        let consistent = get.consistent_read.unwrap_or(false);
        return Some(call(
            GetItemOutput::OPERATION,
            table_of(&get.table_name),
            None,
            consistent,
        ));
    }
    if let Some(query) = input.downcast_mut::<QueryInput>() {
        query.return_consumed_capacity = Some(CONSUMED);
        let consistent = query.consistent_read.unwrap_or(false);
        let (table, index) = (table_of(&query.table_name), query.index_name.clone());
        return Some(call(QueryOutput::OPERATION, table, index, consistent));
    }
    if let Some(batch) = input.downcast_mut::<BatchGetItemInput>() {
        batch.return_consumed_capacity = Some(CONSUMED);
        let requests = batch.request_items.iter().flatten();
        let table = requests
            .clone()
            .map(|(table, _)| table.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let consistent = requests
            .clone()
            .any(|(_, keys)| keys.consistent_read == Some(true));
        return Some(call(BatchGetItemOutput::OPERATION, table, None, consistent));
    }
    if let Some(put) = input.downcast_mut::<PutItemInput>() {
        put.return_consumed_capacity = Some(CONSUMED);
        return Some(call(
            PutItemOutput::OPERATION,
            table_of(&put.table_name),
            None,
            false,
        ));
    }
    if let Some(delete) = input.downcast_mut::<DeleteItemInput>() {
        delete.return_consumed_capacity = Some(CONSUMED);
        let table = table_of(&delete.table_name);
        return Some(call(DeleteItemOutput::OPERATION, table, None, false));
    }
    if let Some(transaction) = input.downcast_mut::<TransactWriteItemsInput>() {
        transaction.return_consumed_capacity = Some(CONSUMED);
        let table = transaction
            .transact_items
            .iter()
            .flatten()
            .find_map(transact_table)
            .unwrap_or_default();
        return Some(call(
            TransactWriteItemsOutput::OPERATION,
            table,
            None,
            false,
        ));
    }
    None
}

fn transact_table(item: &TransactWriteItem) -> Option<String> {
    let put = item.put().map(|p| p.table_name());
    let update = item.update().map(|u| u.table_name());
    let delete = item.delete().map(|d| d.table_name());
    let check = item.condition_check().map(|c| c.table_name());
    put.or(update).or(delete).or(check).map(str::to_owned)
}

/// The reported units and, for reads, the documented charge of a successful call's output.
fn measured(output: &Output, call: &Call) -> Option<((f64, f64), ReadCost)> {
    fn of<T: Consumption>(output: &T, consistent: bool) -> ((f64, f64), ReadCost) {
        // Writes keep the trait's default: no read cost.
        let cost = output.read_cost(consistent);
        (reported_units(&output.consumed(), T::READS), cost)
    }
    let consistent = call.consistent;
    output
        .downcast_ref::<GetItemOutput>()
        .map(|o| of(o, consistent))
        .or_else(|| {
            output
                .downcast_ref::<QueryOutput>()
                .map(|o| of(o, consistent))
        })
        .or_else(|| {
            output
                .downcast_ref::<BatchGetItemOutput>()
                .map(|o| of(o, consistent))
        })
        .or_else(|| {
            output
                .downcast_ref::<PutItemOutput>()
                .map(|o| of(o, consistent))
        })
        .or_else(|| {
            output
                .downcast_ref::<DeleteItemOutput>()
                .map(|o| of(o, consistent))
        })
        .or_else(|| {
            output
                .downcast_ref::<TransactWriteItemsOutput>()
                .map(|o| of(o, consistent))
        })
}

impl Intercept for CapacityRecorder {
    fn name(&self) -> &'static str {
        "CapacityRecorder"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(call) = prepare(context.input_mut()) {
            cfg.interceptor_state().store_put(call);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !tracing::enabled!(target: CAPACITY_TARGET, tracing::Level::DEBUG) {
            return Ok(());
        }
        let Some(call) = cfg.load::<Call>() else {
            return Ok(());
        };
        let outcome = match context.output_or_error() {
            Some(Ok(output)) => measured(output, call),
            _ => None,
        };
        let ((rcu, wcu), cost) = outcome.unwrap_or_default();
        tracing::debug!(
            target: CAPACITY_TARGET,
            operation = call.operation,
            table = call.table,
            index = call.index.as_deref().unwrap_or(""),
            consistent = call.consistent,
            ok = outcome.is_some(),
            rcu,
            wcu,
            items = cost.items,
            item_bytes = cost.bytes,
            rcu_by_size = cost.units,
            "dynamodb call"
        );
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::query::QueryOutput;
    use aws_sdk_dynamodb::types::ConsumedCapacity;

    use super::*;
    use crate::dynamo::{PK, s};
    use std::collections::HashMap;

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
