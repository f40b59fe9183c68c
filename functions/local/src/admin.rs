//! `cloud-images tenant ...` and `cloud-images user ...`: account administration that is safe
//! to run while a server uses the same data directory.

use cloud_images_domain::identity::Role;
use cloud_images_runtime::{Config, Wiring};
use cloud_images_service::NewUser;
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
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
        .map_err(|e: cloud_images_domain::DomainError| e.to_string())
}

pub async fn tenant(config: &Config, command: TenantCommand) -> anyhow::Result<()> {
    let identity = Wiring::open(config).await?.identity().await?;
    let TenantCommand::Create { name, json } = command;
    let tenant = identity.create_tenant(&name).await?;
    if json {
        println!(
            "{}",
            json!({ "tenant_id": tenant.id, "tenant_name": tenant.name })
        );
    } else {
        println!("Created tenant {} ({})", tenant.name, tenant.id);
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
                    tenant_name: tenant,
                    name,
                    role,
                    password,
                })
                .await?;
            if json {
                println!(
                    "{}",
                    json!({
                        "tenant_id": created.tenant.id, "tenant_name": created.tenant.name,
                        "user_id": created.user.id, "user_name": created.user.name,
                        "role": created.user.role, "api_key": created.api_key,
                    })
                );
            } else {
                println!(
                    "Created user {} ({}) in tenant {} with role {}\nAPI key (shown only now): {}",
                    created.user.name,
                    created.user.id,
                    created.tenant.name,
                    created.user.role,
                    created.api_key
                );
            }
        }
        UserCommand::List { json } => {
            let users = identity.list_users().await?;
            if json {
                let users: Vec<_> = users
                    .iter()
                    .map(|(u, t)| json!({ "user_id": u.id, "user_name": u.name, "tenant_id": t.id, "tenant_name": t.name, "role": u.role }))
                    .collect();
                println!("{}", json!({ "users": users }));
            } else {
                println!("{:<24} {:<24} {:<8} ID", "USER", "TENANT", "ROLE");
                for (u, t) in users {
                    println!(
                        "{:<24} {:<24} {:<8} {}",
                        u.name.as_str(),
                        t.name.as_str(),
                        u.role.as_str(),
                        u.id
                    );
                }
            }
        }
    }
    Ok(())
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
