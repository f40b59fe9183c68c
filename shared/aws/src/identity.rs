//! Tenants and users in DynamoDB. A name is claimed by its own item, written in the same
//! transaction as the record, so two creates of one name cannot both succeed.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use cloud_images_domain::identity::{AccountName, Tenant, TenantId, User, UserId};
use cloud_images_domain::ports::IdentityStore;
use cloud_images_domain::{DomainError, DomainResult};

use crate::dynamo::{
    GSI1PK, GSI1SK, Item, PK, SK, failed, get_item, get_opt_s, get_s, get_time, is_cancelled, n,
    query_index, s,
};

/// [`IdentityStore`] over the single table.
pub struct DynamoIdentityStore {
    client: Client,
    table: String,
}

impl DynamoIdentityStore {
    /// Uses `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, pk: String, sk: &str) -> DomainResult<Option<Item>> {
        get_item(&self.client, &self.table, pk, sk.to_owned(), false).await
    }

    /// Writes a record and its name claim together; `Conflict` when either exists.
    async fn put_claimed(&self, item: Item, claim: Item, conflict: String) -> DomainResult<()> {
        let put = |item: Item| -> DomainResult<TransactWriteItem> {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| DomainError::unavailable("building a put", e))?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        let written = self
            .client
            .transact_write_items()
            .transact_items(put(item)?)
            .transact_items(put(claim)?)
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_cancelled(&e) => Err(DomainError::Conflict(conflict)),
            Err(e) => Err(failed("writing an identity record", e)),
        }
    }
}

fn tenant_item(tenant: &Tenant, pk: String, sk: &str) -> Item {
    Item::from([
        (PK.to_owned(), s(pk)),
        (SK.to_owned(), s(sk)),
        ("id".to_owned(), s(tenant.id.as_str())),
        ("name".to_owned(), s(tenant.name.as_str())),
        ("created_at".to_owned(), n(tenant.created_at.timestamp())),
    ])
}

fn tenant_from(item: &Item) -> DomainResult<Tenant> {
    Ok(Tenant {
        id: TenantId::from_trusted(get_s(item, "id")?),
        name: AccountName::parse(&get_s(item, "name")?)?,
        created_at: get_time(item, "created_at")?,
    })
}

fn user_item(user: &User, pk: String, sk: &str) -> Item {
    let mut item = Item::from([
        (PK.to_owned(), s(pk)),
        (SK.to_owned(), s(sk)),
        ("id".to_owned(), s(user.id.as_str())),
        ("name".to_owned(), s(user.name.as_str())),
        ("tenant_id".to_owned(), s(user.tenant_id.as_str())),
        ("role".to_owned(), s(user.role.as_str())),
        ("api_key_hash".to_owned(), s(user.api_key_hash.clone())),
        ("created_at".to_owned(), n(user.created_at.timestamp())),
    ]);
    if let Some(hash) = &user.password_hash {
        item.insert("password_hash".to_owned(), s(hash.clone()));
    }
    item
}

fn user_from(item: &Item) -> DomainResult<User> {
    Ok(User {
        id: UserId::from_trusted(get_s(item, "id")?),
        name: AccountName::parse(&get_s(item, "name")?)?,
        tenant_id: TenantId::from_trusted(get_s(item, "tenant_id")?),
        role: get_s(item, "role")?.parse()?,
        password_hash: get_opt_s(item, "password_hash"),
        api_key_hash: get_s(item, "api_key_hash")?,
        created_at: get_time(item, "created_at")?,
    })
}

fn sorted_by_name<T>(mut records: Vec<T>, name: impl Fn(&T) -> String) -> Vec<T> {
    records.sort_by_key(|r| name(r));
    records
}

#[async_trait]
impl IdentityStore for DynamoIdentityStore {
    async fn insert_tenant(&self, tenant: &Tenant) -> DomainResult<()> {
        let mut record = tenant_item(tenant, format!("TENANT#{}", tenant.id), "TENANT");
        record.insert(GSI1PK.to_owned(), s("TENANTS"));
        record.insert(GSI1SK.to_owned(), s(tenant.name.as_str()));
        let claim = tenant_item(
            tenant,
            format!("TENANT_NAME#{}", tenant.name),
            "TENANT_NAME",
        );
        self.put_claimed(
            record,
            claim,
            format!("a tenant named '{}' already exists", tenant.name),
        )
        .await
    }

    async fn tenant_by_name(&self, name: &AccountName) -> DomainResult<Option<Tenant>> {
        self.get(format!("TENANT_NAME#{name}"), "TENANT_NAME")
            .await?
            .as_ref()
            .map(tenant_from)
            .transpose()
    }

    async fn tenant_by_id(&self, id: &TenantId) -> DomainResult<Option<Tenant>> {
        self.get(format!("TENANT#{id}"), "TENANT")
            .await?
            .as_ref()
            .map(tenant_from)
            .transpose()
    }

    async fn list_tenants(&self) -> DomainResult<Vec<Tenant>> {
        let items = query_index(&self.client, &self.table, "TENANTS").await?;
        let tenants = items
            .iter()
            .map(tenant_from)
            .collect::<DomainResult<Vec<_>>>()?;
        Ok(sorted_by_name(tenants, |t| t.name.to_string()))
    }

    async fn insert_user(&self, user: &User) -> DomainResult<()> {
        let mut record = user_item(user, format!("USER#{}", user.id), "USER");
        record.insert(GSI1PK.to_owned(), s("USERS"));
        record.insert(GSI1SK.to_owned(), s(user.name.as_str()));
        let claim = user_item(user, format!("USER_NAME#{}", user.name), "USER_NAME");
        self.put_claimed(
            record,
            claim,
            format!("a user named '{}' already exists", user.name),
        )
        .await
    }

    async fn user_by_name(&self, name: &AccountName) -> DomainResult<Option<User>> {
        self.get(format!("USER_NAME#{name}"), "USER_NAME")
            .await?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn user_by_id(&self, id: &UserId) -> DomainResult<Option<User>> {
        self.get(format!("USER#{id}"), "USER")
            .await?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn list_users(&self) -> DomainResult<Vec<User>> {
        let items = query_index(&self.client, &self.table, "USERS").await?;
        let users = items
            .iter()
            .map(user_from)
            .collect::<DomainResult<Vec<_>>>()?;
        Ok(sorted_by_name(users, |u| u.name.to_string()))
    }
}
