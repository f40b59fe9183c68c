//! `cloud-images tenant ...` and `cloud-images user ...`: account administration that is safe
//! to run while a server uses the same data directory.

use cloud_images_domain::identity::{Role, Tenant, User};
use cloud_images_runtime::{Config, Wiring};
use cloud_images_service::{Actor, IdentityService, NewUser, Principal, UserChanges};
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Unique tenant name.
        name: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a tenant that owns no images and no containers, with its users.
    Delete {
        /// The tenant's name or id.
        tenant: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Create a user and print its API key (shown only once).
    Create {
        /// Name of the tenant the user belongs to.
        #[arg(long)]
        tenant: String,
        /// Unique user name.
        name: String,
        /// Optional password, for clients that log in with one.
        #[arg(long)]
        password: Option<String>,
        /// What the user may do.
        #[arg(long, value_parser = parse_role, default_value = "member", conflicts_with = "admin")]
        role: Role,
        /// Short for `--role admin`.
        #[arg(long)]
        admin: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a user; its tokens stop working.
    Delete(UserArgs),
    /// Disable a user: it can no longer log in, and its tokens stop working.
    Disable(UserArgs),
    /// Enable a disabled user.
    Enable(UserArgs),
    /// Give a user a new API key and print it (shown only once); the old key and every
    /// token stop working.
    ResetKey(UserArgs),
    /// Set a user's password; its tokens stop working.
    SetPassword {
        #[command(flatten)]
        user: UserArgs,
        /// The new password (visible to other local users in the process list: prefer
        /// `--password-stdin`).
        #[arg(long, required_unless_present = "password_stdin")]
        password: Option<String>,
        /// Read the new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(clap::Args)]
pub struct UserArgs {
    /// The user's name or id.
    user: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
        .map_err(|e: cloud_images_domain::DomainError| e.to_string())
}

fn print(json: bool, document: serde_json::Value, text: String) {
    if json {
        println!("{document}");
    } else {
        println!("{text}");
    }
}

fn tenant_document(tenant: &Tenant) -> serde_json::Value {
    json!({ "tenant_id": tenant.id, "tenant_name": tenant.name })
}

fn user_document(user: &User, tenant: &Tenant) -> serde_json::Value {
    json!({
        "user_id": user.id, "user_name": user.name, "tenant_id": tenant.id,
        "tenant_name": tenant.name, "role": user.role, "enabled": user.enabled,
    })
}

pub async fn tenant(config: &Config, command: TenantCommand) -> anyhow::Result<()> {
    let identity = Wiring::open(config).await?.identity().await?;
    match command {
        TenantCommand::Create { name, json } => {
            let tenant = identity.create_tenant(&name).await?;
            let text = format!("Created tenant {} ({})", tenant.name, tenant.id);
            print(json, tenant_document(&tenant), text);
        }
        TenantCommand::List { json } => {
            let tenants = identity.list_tenants().await?;
            let documents: Vec<_> = tenants.iter().map(tenant_document).collect();
            let mut text = format!("{:<32} ID", "TENANT");
            for t in &tenants {
                text.push_str(&format!("\n{:<32} {}", t.name.as_str(), t.id));
            }
            print(json, json!({ "tenants": documents }), text);
        }
        TenantCommand::Delete { tenant, json } => {
            let tenant = identity
                .delete_tenant(Actor::Operator, &Principal::Name(tenant))
                .await?;
            let text = format!("Deleted tenant {} ({})", tenant.name, tenant.id);
            print(json, tenant_document(&tenant), text);
        }
    }
    Ok(())
}

pub async fn user(config: &Config, command: UserCommand) -> anyhow::Result<()> {
    let identity = Wiring::open(config).await?.identity().await?;
    match command {
        UserCommand::Create {
            tenant,
            name,
            password,
            role,
            admin,
            json,
        } => {
            let role = if admin { Role::Admin } else { role };
            let created = identity
                .create_user(NewUser {
                    tenant: Principal::Name(tenant),
                    name,
                    role,
                    password,
                })
                .await?;
            let mut document = user_document(&created.user, &created.tenant);
            document["api_key"] = json!(created.api_key);
            let text = format!(
                "Created user {} ({}) in tenant {} with role {}\nAPI key (shown only now): {}",
                created.user.name,
                created.user.id,
                created.tenant.name,
                created.user.role,
                created.api_key
            );
            print(json, document, text);
        }
        UserCommand::List { json } => {
            let users = identity.list_users().await?;
            let documents: Vec<_> = users.iter().map(|(u, t)| user_document(u, t)).collect();
            let mut text = format!(
                "{:<24} {:<24} {:<8} {:<8} ID",
                "USER", "TENANT", "ROLE", "ENABLED"
            );
            for (u, t) in &users {
                text.push_str(&format!(
                    "\n{:<24} {:<24} {:<8} {:<8} {}",
                    u.name.as_str(),
                    t.name.as_str(),
                    u.role.as_str(),
                    if u.enabled { "yes" } else { "no" },
                    u.id
                ));
            }
            print(json, json!({ "users": documents }), text);
        }
        UserCommand::Delete(UserArgs { user, json }) => {
            let user = identity
                .delete_user(Actor::Operator, &Principal::Name(user))
                .await?;
            let text = format!("Deleted user {} ({})", user.name, user.id);
            print(
                json,
                json!({ "user_id": user.id, "user_name": user.name }),
                text,
            );
        }
        UserCommand::Disable(args) => set_enabled(&identity, args, false).await?,
        UserCommand::Enable(args) => set_enabled(&identity, args, true).await?,
        UserCommand::ResetKey(UserArgs { user, json }) => {
            let (user, api_key) = identity
                .reset_api_key(Actor::Operator, &Principal::Name(user))
                .await?;
            let text = format!("New API key for {} (shown only now): {api_key}", user.name);
            print(
                json,
                json!({ "user_id": user.id, "user_name": user.name, "api_key": api_key }),
                text,
            );
        }
        UserCommand::SetPassword {
            user: UserArgs { user, json },
            password,
            password_stdin,
        } => {
            let password = match password {
                Some(p) if !password_stdin => p,
                _ => first_line_of_stdin()?,
            };
            let changes = UserChanges {
                password: Some(password),
                ..UserChanges::default()
            };
            let (user, tenant) = identity
                .update_user(Actor::Operator, &Principal::Name(user), changes)
                .await?;
            let text = format!("Set the password of {}", user.name);
            print(json, user_document(&user, &tenant), text);
        }
    }
    Ok(())
}

async fn set_enabled(
    identity: &IdentityService,
    args: UserArgs,
    enabled: bool,
) -> anyhow::Result<()> {
    let changes = UserChanges {
        enabled: Some(enabled),
        ..UserChanges::default()
    };
    let (user, tenant) = identity
        .update_user(Actor::Operator, &Principal::Name(args.user), changes)
        .await?;
    let verb = if enabled { "Enabled" } else { "Disabled" };
    let text = format!("{verb} user {} ({})", user.name, user.id);
    print(args.json, user_document(&user, &tenant), text);
    Ok(())
}

fn first_line_of_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

#[derive(clap::Subcommand)]
pub enum TaskCommand {
    /// Queue a task's message again, e.g. after it went to the dead letters; a task that
    /// already finished stays as it is.
    Redrive {
        /// The task's id.
        id: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub async fn task(config: &Config, command: TaskCommand) -> anyhow::Result<()> {
    let tasks = Wiring::open(config).await?.tasks().await?;
    let TaskCommand::Redrive { id, json } = command;
    let task = tasks.redrive(&id).await?;
    if json {
        println!(
            "{}",
            json!({ "task_id": task.id.to_string(), "status": task.status.as_str() })
        );
    } else {
        println!("Queued task {} again (status {})", task.id, task.status);
    }
    Ok(())
}
