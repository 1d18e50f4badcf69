//! Closed loop: each worker sends its next request as soon as the previous one
//! ended, so the service's speed sets the rate (what `load_test.py` did).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::LoadError;
use super::client::Client;
use super::config::Stop;
use super::engine::{RunContext, join_workers};
use super::recorder::{Batch, Outcome};

/// Runs `concurrency` workers until `stop` (or cancellation).
pub(crate) async fn run(
    context: Arc<RunContext>,
    concurrency: u32,
    stop: Stop,
) -> Result<(), LoadError> {
    // Shared claim counter for a request-count stop: a worker that finishes
    // early takes more, so no worker idles while others still have work.
    let claimed = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for worker in 0..concurrency as usize {
        workers.spawn(work(
            Arc::clone(&context),
            worker,
            stop,
            Arc::clone(&claimed),
        ));
    }
    join_workers(workers).await
}

async fn work(context: Arc<RunContext>, worker: usize, stop: Stop, claimed: Arc<AtomicU64>) {
    let mut client = Client::new(
        worker,
        context.targets.clone(),
        Arc::clone(&context.template),
        &context.config,
    );
    let mut batch = Batch::new();
    loop {
        if context.is_stopping() {
            break;
        }
        let more = match stop {
            Stop::Requests(n) => claimed.fetch_add(1, Ordering::Relaxed) < n,
            Stop::Duration(d) => Instant::now() < context.start + d,
        };
        if !more {
            break;
        }
        let call = client.call().await;
        // In a closed loop the request is intended exactly when it is sent.
        let outcome = Outcome::new(&call, call.started, context.start, false);
        batch.push(outcome, call.finished, &context.recorder);
        // A refused connection fails without ever waiting; give other tasks
        // (workers, progress, cancellation) their turn.
        tokio::task::consume_budget().await;
    }
    batch.flush(&context.recorder);
}
