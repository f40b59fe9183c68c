//! The functions' metrics: what an invocation recorded is written, after it, as CloudWatch
//! Embedded Metric Format. Its own test binary: the collector is the process's one recorder.

#![allow(clippy::unwrap_used)]
// Building every route group in one async test nests futures past the default 128 levels.
#![recursion_limit = "256"]

use std::io::Write;
use std::sync::{Arc, Mutex};

use cloud_images_lambda::metrics::{MetricsOut, emf_collector, flushing_after_each_request};
use cloud_images_lambda::{Wiring, config_from, http_app};
use serde_json::Value;
use tower::ServiceExt;

/// A writer into a buffer the test reads.
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_invocation_writes_its_metrics_as_embedded_metric_format() {
    let collector = emf_collector().expect("the process's first recorder");
    let written = Arc::new(Mutex::new(Vec::new()));
    let sink = written.clone();
    let out: MetricsOut = Arc::new(move || Box::new(Captured(sink.clone())));
    let config =
        config_from(&["--backend", "aws", "--token-signing-key", &"ab".repeat(32)]).unwrap();
    let wiring = Wiring::open(&config).await.unwrap();
    let app = flushing_after_each_request(
        http_app(wiring.images_routes().await.unwrap(), &wiring),
        collector,
        out,
    );
    let path = format!(
        "{}/../../infra/events/apigw-v2-post-images.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let event = std::fs::read_to_string(path)
        .unwrap()
        .replace("{{token}}", "not-a-token");
    let request = lambda_http::request::from_str(&event).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 401);

    let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
    let documents: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let requests = documents
        .iter()
        .find(|d| d["group"] == "images" && d["status"] == "4xx")
        .unwrap_or_else(|| panic!("no images/4xx document in:\n{text}"));
    assert_eq!(
        requests["cloud_images_http_requests_total"], 1,
        "{requests}"
    );
    assert_eq!(requests["function"], "local");
    let declared = &requests["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(declared["Namespace"], "CloudImages");
    let dimensions = declared["Dimensions"][0].as_array().unwrap();
    for dimension in ["function", "group", "status"] {
        assert!(dimensions.iter().any(|d| d == dimension), "{declared}");
    }
}
