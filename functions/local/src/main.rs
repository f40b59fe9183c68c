//! `cloud-images`: the whole service in one process on the embedded default.

mod admin;
mod metrics;
mod serve;
mod worker;

use clap::{Parser, Subcommand};

/// glibc's malloc keeps Argon2's 19 MiB work buffers after each login (the heap grew by
/// ~10 MiB per token request); mimalloc returns them, so memory stays flat.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use cloud_images_runtime::Config;

/// Cloud Images: an OpenStack Images v2 service.
#[derive(Parser)]
#[command(name = "cloud-images", version)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every API on one address, on the embedded default.
    Serve(serve::ServeArgs),
    /// Manage tenants (Keystone projects).
    #[command(subcommand)]
    Tenant(admin::TenantCommand),
    /// Manage users.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Operate on import and export tasks.
    #[command(subcommand)]
    Task(admin::TaskCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cloud_images_runtime::init_tracing(cli.config.log_format);
    match cli.command {
        Command::Serve(args) => serve::run(&cli.config, args).await,
        Command::Tenant(command) => admin::tenant(&cli.config, command).await,
        Command::User(command) => admin::user(&cli.config, command).await,
        Command::Task(command) => admin::task(&cli.config, command).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloud_images_runtime::Backend;

    fn parsed(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn global_options_are_taken_before_or_after_the_subcommand() {
        let before = [
            "cloud-images",
            "--data-dir",
            "/d",
            "--backend",
            "aws",
            "serve",
        ];
        let after = [
            "cloud-images",
            "serve",
            "--data-dir",
            "/d",
            "--backend",
            "aws",
        ];
        let nested = ["cloud-images", "user", "list", "--data-dir", "/d", "--json"];
        for cli in [parsed(&before), parsed(&after)] {
            assert_eq!(cli.config.data_dir, std::path::Path::new("/d"));
            assert_eq!(cli.config.backend, Backend::Aws);
            assert!(matches!(cli.command, Command::Serve(_)));
        }
        assert_eq!(
            parsed(&nested).config.data_dir,
            std::path::Path::new("/d"),
            "after a nested subcommand too"
        );
    }
}
