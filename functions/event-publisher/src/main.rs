//! The `event-publisher` function: the table's stream into EventBridge.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cloud_images_lambda::run_event_publisher().await
}
