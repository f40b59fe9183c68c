//! Tenants and users in DynamoDB. A name is claimed by its own item, written in the same
//! transaction as the record, so two creates of one name cannot both succeed.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use cloud_images_domain::identity::{AccountName, Tenant, TenantId, User, UserId};
use cloud_images_domain::ports::IdentityStore;
use cloud_images_domain::{DomainError, DomainResult};

use crate::dynamo::{
    GSI1PK, GSI1SK, Item, PK, SK, building, condition_failed, failed, get_item, get_n, get_opt_s,
    get_s, get_time, is_cancelled, n, n_u64, query_index, s,
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
        let items = vec![self.claim(item)?, self.claim(claim)?];
        self.transact(items, "writing an identity record")
            .await
            .map_err(|e| e.unwrap_or(DomainError::Conflict(conflict)))
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

fn user_key(id: &UserId) -> (String, &'static str) {
    (format!("USER#{id}"), "USER")
}

fn user_name_key(name: &AccountName) -> (String, &'static str) {
    (format!("USER_NAME#{name}"), "USER_NAME")
}

/// The user's record: everything about it lives here, its name claim holds only its id.
fn user_item(user: &User) -> Item {
    let (pk, sk) = user_key(&user.id);
    let mut item = Item::from([
        (PK.to_owned(), s(pk)),
        (SK.to_owned(), s(sk)),
        (GSI1PK.to_owned(), s("USERS")),
        (GSI1SK.to_owned(), s(user.name.as_str())),
        ("id".to_owned(), s(user.id.as_str())),
        ("name".to_owned(), s(user.name.as_str())),
        ("tenant_id".to_owned(), s(user.tenant_id.as_str())),
        ("role".to_owned(), s(user.role.as_str())),
        ("api_key_hash".to_owned(), s(user.api_key_hash.clone())),
        ("created_at".to_owned(), n(user.created_at.timestamp())),
        ("enabled".to_owned(), n(i64::from(user.enabled))),
        ("token_epoch".to_owned(), n_u64(user.token_epoch)),
        ("revision".to_owned(), n_u64(user.revision)),
    ]);
    if let Some(hash) = &user.password_hash {
        item.insert("password_hash".to_owned(), s(hash.clone()));
    }
    item
}

fn user_name_claim(user: &User) -> Item {
    let (pk, sk) = user_name_key(&user.name);
    Item::from([
        (PK.to_owned(), s(pk)),
        (SK.to_owned(), s(sk)),
        ("id".to_owned(), s(user.id.as_str())),
    ])
}

/// A number attribute that records written before it existed lack.
fn n_or(item: &Item, name: &str, default: i64) -> DomainResult<i64> {
    if item.contains_key(name) {
        get_n(item, name)
    } else {
        Ok(default)
    }
}

fn user_from(item: &Item) -> DomainResult<User> {
    let count = |name: &str| -> DomainResult<u64> {
        Ok(u64::try_from(n_or(item, name, 0)?).unwrap_or_default())
    };
    Ok(User {
        id: UserId::from_trusted(get_s(item, "id")?),
        name: AccountName::parse(&get_s(item, "name")?)?,
        tenant_id: TenantId::from_trusted(get_s(item, "tenant_id")?),
        role: get_s(item, "role")?.parse()?,
        password_hash: get_opt_s(item, "password_hash"),
        api_key_hash: get_s(item, "api_key_hash")?,
        created_at: get_time(item, "created_at")?,
        enabled: n_or(item, "enabled", 1)? != 0,
        token_epoch: count("token_epoch")?,
        failed_logins: u32::try_from(count("failed_logins")?).unwrap_or(u32::MAX),
        last_failed_login: if item.contains_key("last_failed_login") {
            Some(get_time(item, "last_failed_login")?)
        } else {
            None
        },
        revision: count("revision")?,
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
        self.put_claimed(
            user_item(user),
            user_name_claim(user),
            format!("a user named '{}' already exists", user.name),
        )
        .await
    }

    async fn user_by_name(&self, name: &AccountName) -> DomainResult<Option<User>> {
        let (pk, sk) = user_name_key(name);
        let Some(claim) = self.get(pk, sk).await? else {
            return Ok(None);
        };
        self.user_by_id(&UserId::from_trusted(get_s(&claim, "id")?))
            .await
    }

    async fn user_by_id(&self, id: &UserId) -> DomainResult<Option<User>> {
        let (pk, sk) = user_key(id);
        self.get(pk, sk).await?.as_ref().map(user_from).transpose()
    }

    async fn list_users(&self) -> DomainResult<Vec<User>> {
        let items = query_index(&self.client, &self.table, "USERS").await?;
        let users = items
            .iter()
            .map(user_from)
            .collect::<DomainResult<Vec<_>>>()?;
        Ok(sorted_by_name(users, |u| u.name.to_string()))
    }

    async fn update_user(&self, next: &User, current: &User) -> DomainResult<()> {
        let mut items = vec![self.replace_user(next, current)?];
        if next.name != current.name {
            items.push(self.release_name(user_name_key(&current.name), current.id.as_str())?);
            items.push(self.claim(user_name_claim(next))?);
        }
        match self.transact(items, "updating a user").await {
            Ok(()) => Ok(()),
            Err(Some(e)) => Err(e),
            // A condition failed: say which, from what is stored now.
            Err(None) => match self.user_by_id(&current.id).await? {
                None => Err(gone_user(&current.id)),
                Some(stored) if stored.revision != current.revision => Err(DomainError::Conflict(
                    format!("user '{}' changed meanwhile", current.id),
                )),
                Some(_) => Err(DomainError::Conflict(format!(
                    "a user named '{}' already exists",
                    next.name
                ))),
            },
        }
    }

    async fn delete_user(&self, user: &User) -> DomainResult<()> {
        let (pk, sk) = user_key(&user.id);
        let record = self.delete_existing(pk, sk)?;
        let claim = self.release_name(user_name_key(&user.name), user.id.as_str())?;
        self.transact(vec![record, claim], "deleting a user")
            .await
            .map_err(|e| e.unwrap_or_else(|| gone_user(&user.id)))
    }

    async fn delete_tenant(&self, tenant: &Tenant) -> DomainResult<()> {
        let record = self.delete_existing(format!("TENANT#{}", tenant.id), "TENANT")?;
        let claim = self.release_name(
            (format!("TENANT_NAME#{}", tenant.name), "TENANT_NAME"),
            tenant.id.as_str(),
        )?;
        self.transact(vec![record, claim], "deleting a tenant")
            .await
            .map_err(|e| {
                e.unwrap_or_else(|| {
                    DomainError::NotFound(format!("no tenant with id '{}'", tenant.id))
                })
            })
    }

    async fn record_failed_login(&self, user: &UserId, at: DateTime<Utc>) -> DomainResult<()> {
        let (pk, sk) = user_key(user);
        self.update_counters(
            pk,
            sk,
            "ADD failed_logins :one SET last_failed_login = :at",
            [(":one", n(1)), (":at", n(at.timestamp()))],
        )
        .await
    }

    async fn clear_failed_logins(&self, user: &UserId) -> DomainResult<()> {
        let (pk, sk) = user_key(user);
        self.update_counters(
            pk,
            sk,
            "SET failed_logins = :zero REMOVE last_failed_login",
            [(":zero", n(0))],
        )
        .await
    }
}

fn gone_user(id: &UserId) -> DomainError {
    DomainError::NotFound(format!("no user with id '{id}'"))
}

impl DynamoIdentityStore {
    /// The user's record as `next` has it, if it is still at `current`'s revision. An update,
    /// not a put: failed-login counts move apart from revisions and must not be lost.
    fn replace_user(&self, next: &User, current: &User) -> DomainResult<TransactWriteItem> {
        let condition = if current.revision == 0 {
            "attribute_exists(pk) AND (attribute_not_exists(revision) OR revision = :expected)"
        } else {
            "attribute_exists(pk) AND revision = :expected"
        };
        let mut expression = "SET #name = :name, gsi1sk = :name, #role = :role, \
             api_key_hash = :key, enabled = :enabled, token_epoch = :epoch, revision = :revision"
            .to_owned();
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(user_key(&next.id).0))
            .key(SK, s("USER"))
            .condition_expression(condition)
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":expected", n_u64(current.revision))
            .expression_attribute_values(":name", s(next.name.as_str()))
            .expression_attribute_values(":role", s(next.role.as_str()))
            .expression_attribute_values(":key", s(next.api_key_hash.clone()))
            .expression_attribute_values(":enabled", n(i64::from(next.enabled)))
            .expression_attribute_values(":epoch", n_u64(next.token_epoch))
            .expression_attribute_values(":revision", n_u64(next.revision));
        match &next.password_hash {
            Some(hash) => {
                expression.push_str(", password_hash = :password");
                update = update.expression_attribute_values(":password", s(hash.clone()));
            }
            None => expression.push_str(" REMOVE password_hash"),
        }
        let update = update
            .update_expression(expression)
            .build()
            .map_err(building)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Deletes a name claim if it is still `owner`'s.
    fn release_name(
        &self,
        (pk, sk): (String, &'static str),
        owner: &str,
    ) -> DomainResult<TransactWriteItem> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .condition_expression("id = :owner")
            .expression_attribute_values(":owner", s(owner))
            .build()
            .map_err(building)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn claim(&self, item: Item) -> DomainResult<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(building)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete_existing(&self, pk: String, sk: &str) -> DomainResult<TransactWriteItem> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(building)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Runs a transaction; `Err(None)` when a condition cancelled it.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        context: &str,
    ) -> Result<(), Option<DomainError>> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_cancelled(&e) => Err(None),
            Err(e) => Err(Some(failed(context, e))),
        }
    }

    /// An atomic counter update of a user that exists; one that is gone is left gone.
    async fn update_counters<const N: usize>(
        &self,
        pk: String,
        sk: &str,
        expression: &str,
        values: [(&str, AttributeValue); N],
    ) -> DomainResult<()> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression(expression)
            .condition_expression("attribute_exists(pk)");
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(failed("counting a failed login", e)),
        }
    }
}
