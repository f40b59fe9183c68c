//! The SQS queue keeps the task-queue contract against the endpoint `AWS_ENDPOINT_URL`
//! names (the test command starts a local emulator and sets it).

use cloud_images_aws::{SqsTaskQueue, load_config, sqs_client};

#[tokio::test]
async fn sqs_keeps_the_task_queue_contract() {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "set AWS_ENDPOINT_URL to an SQS endpoint (scripts/test starts an emulator and sets it)"
    );
    let client = sqs_client(&load_config().await);
    let name = format!("contract-{}", uuid::Uuid::new_v4().simple());
    let queue = SqsTaskQueue::ensure(client, &name, 2)
        .await
        .expect("create the queues");
    cloud_images_testkit::task_queue_contract(&queue).await;
}
