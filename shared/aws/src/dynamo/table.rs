//! Table creation, for the local binary and tests (the SAM template creates the table in a
//! deployment).

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
};
use cloud_images_domain::{DomainError, DomainResult};

use super::failed;
use super::schema::{
    GSI1, GSI1PK, GSI1SK, GSI2, GSI2PK, GSI2SK, GSI3, GSI3PK, GSI3SK, ID_KEY, NAME_KEY,
    ORDERED_INDEXES, PK, SK, TTL_ATTRIBUTE, UPDATE_KEY,
};

/// How long `ensure_table` waits for a new table to become usable.
const TABLE_READY_WAIT: Duration = Duration::from_secs(300);

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
        .attribute_definitions(attribute(NAME_KEY)?)
        .attribute_definitions(attribute(UPDATE_KEY)?)
        .attribute_definitions(attribute(ID_KEY)?);
    let mut created = created;
    for (name, pk, sk) in ORDERED_INDEXES {
        created = created.global_secondary_indexes(index(name, pk, sk)?);
    }
    let created = created.send().await;
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
