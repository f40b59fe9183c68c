//! The task queue on SQS: messages are deleted only when acknowledged (after the task
//! reached a final state), and a redrive policy moves messages received too often to a
//! dead-letter queue.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use cloud_images_domain::ports::{Delivery, TaskQueue};
use cloud_images_domain::{DomainError, DomainResult};

/// [`TaskQueue`] over an SQS queue and its dead-letter queue.
#[derive(Clone)]
pub struct SqsTaskQueue {
    client: Client,
    queue_url: String,
    dead_letter_url: String,
}

fn failed(context: &str, error: impl std::error::Error + Send + Sync + 'static) -> DomainError {
    DomainError::unavailable(context.to_owned(), error)
}

impl SqsTaskQueue {
    /// Uses existing queues by URL (as a deployment's template creates them).
    pub fn new(
        client: Client,
        queue_url: impl Into<String>,
        dead_letter_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dead_letter_url: dead_letter_url.into(),
        }
    }

    /// Creates `name` and `name-dlq` when missing, with a redrive policy after
    /// `max_receives` deliveries, for local use; returns the queue over them.
    pub async fn ensure(client: Client, name: &str, max_receives: u32) -> DomainResult<Self> {
        let dead_letter_url = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .map_err(|e| failed("creating the dead-letter queue", e))?
            .queue_url()
            .unwrap_or_default()
            .to_owned();
        // The ARN comes from SQS itself: account ids and hosts differ between deployments.
        let attributes = client
            .get_queue_attributes()
            .queue_url(&dead_letter_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| failed("reading the dead-letter queue's ARN", e))?;
        let arn = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .ok_or_else(|| {
                DomainError::unavailable("reading the dead-letter queue's ARN", "SQS returned none")
            })?;
        let policy =
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{max_receives}"}}"#);
        let queue_url = client
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::RedrivePolicy, policy)
            .send()
            .await
            .map_err(|e| failed("creating the task queue", e))?
            .queue_url()
            .unwrap_or_default()
            .to_owned();
        Ok(Self::new(client, queue_url, dead_letter_url))
    }
}

#[async_trait]
impl TaskQueue for SqsTaskQueue {
    async fn send(&self, body: &str) -> DomainResult<()> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| failed("sending a task message", e))?;
        Ok(())
    }

    async fn receive(&self, max: usize, lease: Duration) -> DomainResult<Vec<Delivery>> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .visibility_timeout(i32::try_from(lease.as_secs().max(1)).unwrap_or(i32::MAX))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| failed("receiving task messages", e))?;
        Ok(received
            .messages()
            .iter()
            .filter_map(|m| {
                let count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                Some(Delivery {
                    body: m.body()?.to_owned(),
                    receipt: m.receipt_handle()?.to_owned(),
                    receive_count: count,
                })
            })
            .collect())
    }

    async fn ack(&self, receipt: &str) -> DomainResult<()> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| failed("deleting a task message", e))?;
        Ok(())
    }

    async fn dead_letter_count(&self) -> DomainResult<usize> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(&self.dead_letter_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| failed("counting dead letters", e))?;
        Ok(attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    async fn depth(&self) -> DomainResult<usize> {
        let counts = [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ];
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .set_attribute_names(Some(counts.to_vec()))
            .send()
            .await
            .map_err(|e| failed("counting queued tasks", e))?;
        let attributes = attributes.attributes();
        Ok(counts
            .iter()
            .filter_map(|name| attributes.and_then(|a| a.get(name)))
            .filter_map(|n| n.parse::<usize>().ok())
            .sum())
    }
}
