//! Closed loop: each worker sends its next request as soon as the previous one
//! ended, so the service's speed sets the rate (what `load_test.py` did).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::LoadError;
use super::client::Client;
use super::config::{Stages, Stop};
use super::context::{RunContext, join_workers};
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

/// Runs a concurrency-staged run: as many workers as the highest stage needs, of
/// which the first `level(t)` (rounded) send at any moment; the others wait.
pub(crate) async fn run_staged(context: Arc<RunContext>, stages: Stages) -> Result<(), LoadError> {
    let stages = Arc::new(stages);
    let mut workers = JoinSet::new();
    for worker in 0..stages.peak().ceil() as usize {
        workers.spawn(work_staged(
            Arc::clone(&context),
            worker,
            Arc::clone(&stages),
        ));
    }
    join_workers(workers).await
}

/// How often an idle worker of a staged run checks whether its turn came.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_millis(50);

async fn work_staged(context: Arc<RunContext>, worker: usize, stages: Arc<Stages>) {
    let mut client = Client::new(
        worker,
        context.targets.clone(),
        Arc::clone(&context.template),
        &context.config,
    );
    let end = context.start + stages.total();
    let mut batch = Batch::new();
    loop {
        let now = Instant::now();
        if context.is_stopping() || now >= end {
            break;
        }
        let elapsed = now.saturating_duration_since(context.start);
        let active = stages.level_at(elapsed).round() as usize;
        if worker >= active {
            // Not this worker's turn at this level: a short nap, bounded by the end.
            batch.flush(&context.recorder);
            tokio::time::sleep_until((now + IDLE_CHECK).min(end)).await;
            continue;
        }
        let call = client.call().await;
        let stage = stages.stage_at(call.started.saturating_duration_since(context.start));
        let outcome = Outcome::new(&call, call.started, context.start, false).in_stage(stage);
        batch.push(outcome, call.finished, &context.recorder);
        tokio::task::consume_budget().await;
    }
    batch.flush(&context.recorder);
}
