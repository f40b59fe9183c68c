//! Reading the rest of a refused upload, so the client gets to read the answer.
//!
//! When an upload is refused part way (past a size limit, bad data), the unread rest of
//! the body is still on its way. Answering and closing at once makes a client that is still
//! sending fail with a broken pipe and never see the 4xx. So the body is kept: after a
//! refusal the handler takes it back and throws away what is still coming, up to a bound,
//! before answering. A body nothing read yet is left alone: the client may be waiting on
//! `Expect: 100-continue` and need not send it at all.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use futures_util::{Stream, StreamExt};

/// The most of a refused body read and thrown away; a bigger rest is cut off.
const DRAIN_AT_MOST: usize = 16 << 20;
/// The longest a refused body is read for.
const DRAIN_FOR_AT_MOST: Duration = Duration::from_secs(5);

/// A request body the handler can take back after the service is done with it.
pub(crate) struct KeptBody {
    inner: Arc<Mutex<BodyDataStream>>,
    read: Arc<AtomicBool>,
}

impl KeptBody {
    pub(crate) fn new(body: Body) -> Self {
        Self {
            inner: Arc::new(Mutex::new(body.into_data_stream())),
            read: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The body as a stream for the service; the handler keeps `self`.
    pub(crate) fn stream(&self) -> Reading {
        Reading {
            inner: self.inner.clone(),
            read: self.read.clone(),
        }
    }

    /// Reads and drops what remains of a body that was being read, within the bounds, once
    /// the service let go of it.
    pub(crate) async fn drain(self) {
        if !self.read.load(Ordering::Relaxed) {
            return;
        }
        let Ok(inner) = Arc::try_unwrap(self.inner) else {
            return;
        };
        let mut rest = inner.into_inner().unwrap_or_else(|p| p.into_inner());
        let discard = async {
            let mut dropped = 0;
            while let Some(Ok(chunk)) = rest.next().await {
                dropped += chunk.len();
                if dropped > DRAIN_AT_MOST {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_FOR_AT_MOST, discard).await;
    }
}

/// The service's side of a [`KeptBody`].
pub(crate) struct Reading {
    inner: Arc<Mutex<BodyDataStream>>,
    read: Arc<AtomicBool>,
}

impl Stream for Reading {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.read.store(true, Ordering::Relaxed);
        // Never contended: the handler takes the body back only after the service dropped
        // this side.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.poll_next_unpin(cx)
    }
}
