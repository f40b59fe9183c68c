//! The `task-worker` function: SQS batches into `TaskRunner::execute`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cloud_images_lambda::run_task_worker().await
}
