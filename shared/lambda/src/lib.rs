//! Lambda hosts of Cloud Images.
//!
//! An HTTP function serves one route group with `lambda_http`: the same axum router the
//! local binary mounts, so behaviour cannot drift between hosts. The task worker hands each
//! SQS record to [`TaskRunner::execute`] and reports the records to retry as partial batch
//! failures, so one bad message neither redoes nor drops the others. Configuration and the
//! SDK clients a function uses are built once per cold start, before the first event; a
//! function names its route group's router in `main`, so it builds (and links) nothing else.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use clap::Parser;
use cloud_images_runtime::{Config, LogFormat, StartupError};
use cloud_images_service::{Outcome, TaskRunner};

pub mod events;
pub mod metrics;

pub use cloud_images_runtime::Wiring;

/// A function's settings come from its environment only (the template sets them).
#[derive(Parser)]
struct FromEnvironment {
    #[command(flatten)]
    config: Config,
}

/// Reads the configuration from the environment; a Lambda gets no arguments.
pub fn config_from_env() -> Result<Config, lambda_http::Error> {
    config_from(&[])
}

/// The configuration from the environment, overridden by flags (for tests and tools).
pub fn config_from(flags: &[&str]) -> Result<Config, lambda_http::Error> {
    let args = std::iter::once("cloud-images-function").chain(flags.iter().copied());
    Ok(FromEnvironment::try_parse_from(args)?.config)
}

/// An HTTP function's router: its route group with the common layers.
pub fn http_app(routes: axum::Router, wiring: &Wiring) -> axum::Router {
    cloud_images_http::with_common_layers(routes, wiring.http_settings())
}

/// The whole life of an HTTP function: configure, build its route group, then serve events.
/// `routes` is one of [`Wiring`]'s routers, e.g. `Wiring::images_routes`.
pub async fn serve_http(
    routes: impl AsyncFnOnce(&Wiring) -> Result<axum::Router, StartupError>,
) -> Result<(), lambda_http::Error> {
    cloud_images_runtime::init_tracing(LogFormat::Json);
    let config = config_from_env()?;
    let wiring = Wiring::open(&config).await?;
    // Boxed: the router's construction is a deep future, built once per cold start.
    let routes = Box::pin(routes(&wiring)).await?;
    let mut app = http_app(routes, &wiring);
    if let Some(collector) = metrics::emf_collector() {
        app = metrics::flushing_after_each_request(app, collector, metrics::stdout());
    }
    lambda_http::run(app).await
}

/// Runs every record of a batch; the ids of those to redeliver are the batch failures.
pub async fn handle_batch(runner: &TaskRunner, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.unwrap_or_default();
        let outcome = match record.body.as_deref() {
            Some(body) => runner.execute(body).await,
            // Nothing to run: acknowledging it is all there is to do.
            None => Ok(Outcome::Finished),
        };
        let redeliver = match outcome {
            Ok(Outcome::Finished) => false,
            Ok(Outcome::Retry) => true,
            Err(e) => {
                tracing::warn!(message = %id, error = %e, "a task run failed; it will be redelivered");
                true
            }
        };
        if redeliver {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// The whole life of the task worker: configure, build, then take SQS batches.
pub async fn run_task_worker() -> Result<(), lambda_runtime::Error> {
    cloud_images_runtime::init_tracing(LogFormat::Json);
    let config = config_from_env()?;
    let runner = Wiring::open(&config).await?.task_runner().await?;
    let collector = metrics::emf_collector();
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let runner = runner.clone();
            async move {
                let response = handle_batch(&runner, event.payload).await;
                if let Some(collector) = collector {
                    metrics::flush(collector, &metrics::stdout());
                }
                Ok::<_, lambda_runtime::Error>(response)
            }
        },
    ))
    .await
}

/// The whole life of the event function: an EventBridge client for the bus
/// `CLOUD_IMAGES_EVENT_BUS` names and a DynamoDB client for the table
/// (`CLOUD_IMAGES_AWS_TABLE`) whose stream it takes, then the stream's batches.
pub async fn run_event_publisher() -> Result<(), lambda_runtime::Error> {
    cloud_images_runtime::init_tracing(LogFormat::Json);
    let setting = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let (bus, table) = (
        setting("CLOUD_IMAGES_EVENT_BUS")?,
        setting("CLOUD_IMAGES_AWS_TABLE")?,
    );
    let config = cloud_images_aws::load_config().await;
    let sink =
        cloud_images_aws::EventBridgeSink::new(cloud_images_aws::eventbridge_client(&config), bus);
    let table = events::Table {
        client: cloud_images_aws::dynamodb_client(&config),
        name: table,
    };
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<aws_lambda_events::dynamodb::Event>| {
            let (sink, table) = (&sink, &table);
            async move {
                Ok::<_, lambda_runtime::Error>(
                    events::publish_batch(sink, Some(table), event.payload).await,
                )
            }
        },
    ))
    .await
}
