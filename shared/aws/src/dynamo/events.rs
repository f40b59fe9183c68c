//! Events in the table: a change's events ride in the item the change writes (attribute
//! [`EVENTS`]), so they are stored in the very same write, at no extra write request. A
//! change that removes its item (a deletion), or whose events are large (an image payload
//! repeats its properties), writes them in event items of their own in the same
//! transaction. The table's stream then carries every stored event once per
//! write, and the stack's event function publishes them from there
//! ([`events_written`]), then strips them from the item ([`strip_published`]): left in
//! place they would ride in every list page that reads the item.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use cloud_images_domain::events::Event;
use cloud_images_domain::{DomainError, DomainResult};

use super::attributes::{n, s};
use super::schema::{Item, PK, SK, TTL_ATTRIBUTE};
use super::{building, condition_failed, failed};

/// The attribute holding the events of the write that stored the item (JSON array).
pub const EVENTS: &str = "events";

/// How long an event item stays in the table: its stream record is what counts, and
/// streams keep records for 24 hours.
const EVENT_ITEM_DAYS: i64 = 2;

/// The most JSON that rides in the changed item: an image's payload repeats its
/// properties, up to three times for an upload, and an item must stay under DynamoDB's
/// 400 KB. Larger events go in event items of their own.
const INLINE_AT_MOST: usize = 16 * 1024;

fn json(events: &[Event]) -> DomainResult<String> {
    serde_json::to_string(events)
        .map_err(|e| DomainError::unavailable("writing events", Box::new(e)))
}

/// `item` carrying `events`; without events it carries none (a write replaces the whole
/// item, so an earlier write's events never ride along again).
pub fn with_events(mut item: Item, events: &[Event]) -> DomainResult<Item> {
    if !events.is_empty() {
        item.insert(EVENTS.to_owned(), s(json(events)?));
    }
    Ok(item)
}

/// `item` carrying `events` when they are small, with nothing more to write; otherwise
/// `item` as it is and the event items to write in the same transaction.
pub fn place(
    table: &str,
    item: Item,
    events: &[Event],
) -> DomainResult<(Item, Vec<TransactWriteItem>)> {
    if events.is_empty() || json(events)?.len() <= INLINE_AT_MOST {
        return Ok((with_events(item, events)?, Vec::new()));
    }
    Ok((item, event_items(table, events)?))
}

/// An event item per event, for the transaction of a change whose own item cannot carry
/// them (it goes away, or they are large).
pub fn event_items(table: &str, events: &[Event]) -> DomainResult<Vec<TransactWriteItem>> {
    let expires = chrono::Utc::now().timestamp() + EVENT_ITEM_DAYS * 86_400;
    events
        .iter()
        .map(|event| {
            let item = Item::from([
                (PK.to_owned(), s(format!("EVENTS#{}", event.message_id))),
                (SK.to_owned(), s("EVENTS")),
                (EVENTS.to_owned(), s(json(std::slice::from_ref(event))?)),
                (TTL_ATTRIBUTE.to_owned(), n(expires)),
            ]);
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .build()
                .map_err(building)?;
            Ok(TransactWriteItem::builder().put(put).build())
        })
        .collect()
}

/// The events a write stored, from the `events` attribute of the item after it (the
/// stream's new image) and before it (old image): those new in this write. An item that
/// was removed or that carries no events stored none.
pub fn events_written(after: Option<&str>, before: Option<&str>) -> DomainResult<Vec<Event>> {
    let parse = |raw: &str| {
        serde_json::from_str::<Vec<Event>>(raw)
            .map_err(|e| DomainError::unavailable("reading stored events", Box::new(e)))
    };
    let Some(after) = after else {
        return Ok(Vec::new());
    };
    let mut events = parse(after)?;
    if let Some(before) = before {
        let earlier = parse(before)?;
        events.retain(|e| !earlier.iter().any(|old| old.message_id == e.message_id));
    }
    Ok(events)
}

/// Removes the events from the item at (`pk`, `sk`) if it still carries exactly
/// `published` (the JSON the stream showed): a later write carries events of its own, which
/// its own record publishes and strips. Keeps the item's version: no writer loses a race to it.
pub async fn strip_published(
    client: &Client,
    table: &str,
    (pk, sk): (&str, &str),
    published: &str,
) -> DomainResult<()> {
    let stripped = client
        .update_item()
        .table_name(table)
        .key(PK, s(pk))
        .key(SK, s(sk))
        .update_expression("REMOVE #events")
        .condition_expression("#events = :published")
        .expression_attribute_names("#events", EVENTS)
        .expression_attribute_values(":published", s(published))
        .send()
        .await;
    match stripped {
        Ok(_) => Ok(()),
        Err(e) if condition_failed(&e) => Ok(()),
        Err(e) => Err(failed("removing published events from an item", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use cloud_images_domain::events::{Actor, image_events};
    use cloud_images_domain::image::{Image, ImageId};

    fn events() -> Vec<Event> {
        let image = Image::new_queued(ImageId::random(), None, Utc::now());
        image_events(None, Some(&image), &Actor::service(), Utc::now())
    }

    #[test]
    fn a_write_stores_the_events_it_carries_and_no_earlier_ones() {
        let first = events();
        let second = events();
        let raw_first = json(&first).expect("json");
        let raw_second = json(&second).expect("json");
        assert_eq!(events_written(Some(&raw_first), None).expect("read"), first);
        assert_eq!(
            events_written(Some(&raw_second), Some(&raw_first)).expect("read"),
            second
        );
        // An item rewritten by something that kept the attribute stored nothing new.
        assert!(
            events_written(Some(&raw_first), Some(&raw_first))
                .expect("read")
                .is_empty()
        );
        assert!(
            events_written(None, Some(&raw_first))
                .expect("read")
                .is_empty()
        );
    }

    #[test]
    fn an_item_without_events_gets_no_attribute() {
        let item = with_events(Item::new(), &[]).expect("item");
        assert!(!item.contains_key(EVENTS));
        assert!(event_items("t", &[]).expect("none").is_empty());
    }

    #[test]
    fn large_events_go_in_items_of_their_own_one_each() {
        let mut image = Image::new_queued(ImageId::random(), None, Utc::now());
        image
            .properties
            .insert("big".into(), "x".repeat(INLINE_AT_MOST));
        let mut active = image.clone();
        active.status = cloud_images_domain::image::ImageStatus::Active;
        image.status = cloud_images_domain::image::ImageStatus::Saving;
        let events = image_events(Some(&image), Some(&active), &Actor::service(), Utc::now());
        let (item, extra) = place("t", Item::new(), &events).expect("placed");
        assert!(!item.contains_key(EVENTS));
        assert_eq!(extra.len(), events.len());
        let (item, extra) = place("t", Item::new(), &self::events()).expect("placed");
        assert!(item.contains_key(EVENTS) && extra.is_empty());
    }
}
