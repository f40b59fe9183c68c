//! The functions' metrics: the same `metrics::` calls the local binary exports to Prometheus
//! land here in a collector that is written to stdout as CloudWatch Embedded Metric Format
//! after each invocation. CloudWatch Logs turns those lines into metrics (namespace
//! `CloudImages`, dimension `function`, and each metric's labels): no network call.

use std::io::Write;
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use metrics_cloudwatch_embedded::Collector;

/// Where a flush writes: stdout in a function, a buffer in tests.
pub type MetricsOut = Arc<dyn Fn() -> Box<dyn Write + Send> + Send + Sync>;

/// Installs the collector every `metrics::` call reports to; `None` (and a warning) when a
/// recorder is already installed.
pub fn emf_collector() -> Option<&'static Collector> {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
    metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace("CloudImages")
        .with_dimension("function", function)
        .init()
        .inspect_err(|e| tracing::warn!(error = %e, "metrics stay off"))
        .ok()
}

/// Writes what the invocation recorded; a metrics line that cannot be written is not worth
/// failing the invocation for.
pub fn flush(collector: &Collector, out: &MetricsOut) {
    if let Err(e) = collector.flush(out()) {
        tracing::warn!(error = %e, "writing the invocation's metrics");
    }
}

/// `app`, flushing the metrics after every request (one request per invocation).
pub fn flushing_after_each_request(
    app: axum::Router,
    collector: &'static Collector,
    out: MetricsOut,
) -> axum::Router {
    app.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let out = out.clone();
            async move {
                let response: Response = next.run(request).await;
                flush(collector, &out);
                response
            }
        },
    ))
}

/// Stdout, where Lambda's log lines go.
pub fn stdout() -> MetricsOut {
    Arc::new(|| Box::new(std::io::stdout()))
}
