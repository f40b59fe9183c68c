//! `cloud-images serve`.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use cloud_images_runtime::{Config, EventSinks, Wiring};
use cloud_images_service::IdentityService;

/// Flags of `serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "CLOUD_IMAGES_LISTEN", default_value = "127.0.0.1:9292")]
    listen: SocketAddr,
    /// Address serving Prometheus metrics at /metrics (off when unset; keep it private).
    #[arg(long, env = "CLOUD_IMAGES_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    events: EventSinks,
}

pub async fn run(config: &Config, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(address) = args.metrics_listen {
        let bound = crate::metrics::serve(address).await?;
        tracing::info!(address = %bound, "metrics at http://{bound}/metrics");
    }
    let wiring = Wiring::open(config).await?;
    // Nothing else writes this data directory's images while serve starts, so anything left
    // mid-upload belongs to a process that was killed.
    let (requeued, swept) = wiring
        .image_data()
        .await?
        .recover_interrupted_uploads()
        .await?;
    if requeued + swept > 0 {
        tracing::warn!(
            requeued,
            swept,
            "recovered uploads interrupted by an earlier stop"
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    let root = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}"));
    announce_first_admin(&wiring.identity().await?, &root).await?;
    let app = cloud_images_http::with_common_layers(
        Box::pin(wiring.all_routes()).await?,
        wiring.http_settings(),
    );
    tracing::info!(%address, data_dir = %config.data_dir.display(), "serving");
    // The one line scripts and tests wait for: the service accepts requests from here on.
    println!("Cloud Images listening on {root}");
    std::io::stdout().flush()?;
    // Events that were stored but not delivered before an earlier stop go out first.
    let deliveries: Vec<_> = wiring
        .event_deliveries(&args.events)?
        .into_iter()
        .map(|delivery| tokio::spawn(delivery.run()))
        .collect();
    let worker = tokio::spawn(crate::worker::drain_queue(
        wiring.task_queue().await?,
        wiring.task_runner().await?,
        wiring.tasks().await?,
        config.task_workers(),
    ));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // A task cut off here is still queued and resumes after the next start.
    worker.abort();
    // Whatever was not delivered stays in the outbox for the next start.
    deliveries.iter().for_each(tokio::task::JoinHandle::abort);
    tracing::info!("stopped");
    Ok(())
}

/// On an empty data directory, creates the `admin` account and prints its secrets, once.
async fn announce_first_admin(identity: &IdentityService, root: &str) -> anyhow::Result<()> {
    let Some(admin) = identity.bootstrap_admin().await? else {
        return Ok(());
    };
    let created = &admin.created;
    println!(
        "Created the first administrator; these secrets are shown only now:\n\
         \x20 tenant:   {} ({})\n  user:     {}\n  password: {}\n  API key:  {}\n\n\
         Get a token:\n  curl -s {root}/v2.0/tokens -H 'Content-Type: application/json' \\\n\
         \x20   -d '{{\"auth\": {{\"RAX-KSKEY:apiKeyCredentials\": {{\"username\": \"{}\", \"apiKey\": \"{}\"}}}}}}'\n",
        created.tenant.name,
        created.tenant.id,
        created.user.name,
        admin.password,
        created.api_key,
        created.user.name,
        created.api_key,
    );
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        () = terminate => {},
    }
}
