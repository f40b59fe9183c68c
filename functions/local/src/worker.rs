//! The local binary's task workers: several loops drain the durable queue into `execute`, each
//! one task at a time, for as long as the server runs, so one long import never holds up the
//! others. A task interrupted by a stop is still queued (its message was never acknowledged)
//! and resumes after the next start once its lease ends.

use std::time::Duration;

use std::sync::Arc;

use cloud_images_domain::ports::TaskQueue;
use cloud_images_service::{Outcome, TaskRunner, TaskService};

/// Pause between empty polls of the queue.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// How often the queue depth gauge is refreshed.
const DEPTH_EVERY: Duration = Duration::from_secs(5);
/// How often expired task records are removed.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Runs `workers` queue loops (at least one) and the purge of expired tasks, forever; meant
/// to be spawned beside the HTTP server.
pub async fn drain_queue(
    queue: Arc<dyn TaskQueue>,
    runner: TaskRunner,
    tasks: TaskService,
    workers: usize,
) {
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (queue, runner) = (queue.clone(), runner.clone());
        loops.spawn(async move {
            loop {
                if !work_once(queue.as_ref(), &runner).await {
                    tokio::time::sleep(IDLE_POLL).await;
                }
            }
        });
    }
    loops.spawn(report_depth(queue));
    loop {
        if let Err(e) = tasks.purge_expired().await {
            tracing::warn!(error = %e, "could not purge expired tasks");
        }
        tokio::time::sleep(PURGE_EVERY).await;
    }
}

/// Keeps the queue depth gauge current (on the stack, SQS reports its own depth).
async fn report_depth(queue: Arc<dyn TaskQueue>) {
    loop {
        if let Ok(depth) = queue.depth().await {
            metrics::gauge!("cloud_images_task_queue_depth").set(depth as f64);
        }
        tokio::time::sleep(DEPTH_EVERY).await;
    }
}

/// Runs at most one delivered task; false when there was nothing to do (or the queue failed).
async fn work_once(queue: &dyn TaskQueue, runner: &TaskRunner) -> bool {
    let deliveries = match queue.receive(1, runner.lease()).await {
        Ok(deliveries) => deliveries,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the task queue");
            return false;
        }
    };
    let Some(delivery) = deliveries.into_iter().next() else {
        return false;
    };
    match runner.execute(&delivery.body).await {
        Ok(Outcome::Finished) => {
            if let Err(e) = queue.ack(&delivery.receipt).await {
                tracing::warn!(error = %e, "could not acknowledge a finished task's message");
            }
        }
        // The message comes back when its lease ends.
        Ok(Outcome::Retry) => {}
        Err(e) => tracing::warn!(error = %e, "a task run failed; its message will be redelivered"),
    }
    true
}
