//! Open loop: requests start at their scheduled times whatever the responses
//! do, and latency counts from the intended time (coordinated-omission
//! corrected, like wrk2).
//!
//! Free workers take the next request number from a shared counter, wait for
//! its intended time and send it: no hand-off between tasks per request, so the
//! open loop costs about what the closed loop does. A watchdog notices when a
//! request is due and no worker took it (all are busy: the service is slow)
//! and starts another worker, with its own connection, up to the in-flight cap.
//! At the cap, due requests wait for a worker: they start late and the wait
//! counts in their latency. A request that cannot start within the request
//! timeout of its intended time is dropped. Late and dropped requests are
//! reported, never hidden.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use super::LoadError;
use super::client::Client;
use super::config::{Stages, Stop};
use super::context::RunContext;
use super::recorder::{Batch, Outcome};
use super::schedule::Schedule;

/// A due request nobody took for this long means every worker is busy. Tokio's
/// timers tick in milliseconds, so waiting less would only add noise.
const UNTAKEN_GRACE: Duration = Duration::from_millis(1);

/// A worker waiting for a far-off request wakes this often to notice a
/// cancellation (registering a cancellation waiter per request would cost a lock).
const SLEEP_SLICE: Duration = Duration::from_millis(100);

/// What the workers of one open-loop run share.
struct Plan {
    schedule: Schedule,
    /// A staged run's stages, to count each request in the stage it is due in.
    stages: Option<Stages>,
    total: u64,
    /// Number of the next request nobody has taken yet.
    next: AtomicU64,
    /// Dropped requests per stage (one entry without stages).
    dropped: Vec<AtomicU64>,
}

impl Plan {
    fn intended(&self, context: &RunContext, k: u64) -> Instant {
        context.start + self.schedule.offset(k)
    }

    /// The stage request `k` is due in (0 without stages).
    fn stage_of(&self, k: u64) -> usize {
        self.stages
            .as_ref()
            .map_or(0, |stages| stages.stage_at(self.schedule.offset(k)))
    }

    fn drop_request(&self, k: u64) {
        if let Some(count) = self.dropped.get(self.stage_of(k)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Requests dropped, in total and per stage.
pub(crate) struct Dropped {
    pub(crate) total: u64,
    pub(crate) per_stage: Vec<u64>,
}

/// Runs the schedule (of `stages`, when given); returns how many scheduled requests
/// were dropped.
pub(crate) async fn run(
    context: Arc<RunContext>,
    schedule: Schedule,
    stages: Option<Stages>,
    stop: Stop,
    max_in_flight: u32,
) -> Result<Dropped, LoadError> {
    let total = schedule.total(stop);
    let stage_count = stages.as_ref().map_or(1, |s| s.stages.len().max(1));
    let plan = Arc::new(Plan {
        schedule,
        stages,
        total,
        next: AtomicU64::new(0),
        dropped: (0..stage_count).map(|_| AtomicU64::new(0)).collect(),
    });
    let cap = max_in_flight as usize;
    let mut workers = JoinSet::new();
    workers.spawn(work(Arc::clone(&context), Arc::clone(&plan), 0));
    let mut started = 1usize;
    let mut failure = None;
    let mut watching = true;
    // Requests below this number have a worker that was started for them (it
    // may not have taken its request yet), so no request gets two.
    let mut provided_for = 0u64;

    loop {
        // The first request that nobody took and no new worker is coming for.
        let untaken = plan.next.load(Ordering::Relaxed).max(provided_for);
        watching &= untaken < plan.total && !context.is_stopping() && started < cap;
        let overdue_at = plan.intended(&context, untaken.min(plan.total)) + UNTAKEN_GRACE;
        tokio::select! {
            joined = workers.join_next() => match joined {
                None => break,
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    failure.get_or_insert_with(|| e.to_string());
                }
            },
            () = sleep_until(overdue_at), if watching => {
                // Every request due by now and not provided for needs a worker.
                let due = plan.schedule.due_before(context.start.elapsed()).min(plan.total);
                let untaken = plan.next.load(Ordering::Relaxed).max(provided_for);
                let more = due.saturating_sub(untaken).min((cap - started) as u64);
                for _ in 0..more {
                    workers.spawn(work(Arc::clone(&context), Arc::clone(&plan), started));
                    started += 1;
                }
                provided_for = untaken + more;
            }
            () = context.cancel.cancelled(), if watching => watching = false,
        }
    }
    if let Some(message) = failure {
        return Err(LoadError::Worker(message));
    }

    if let Some(stopped_at) = context.stopped_at() {
        // Requests already due at the cancellation were promised and not sent;
        // the ones not yet due were never owed.
        let stopped_after = stopped_at.saturating_duration_since(context.start);
        let mut k = plan.next.load(Ordering::Relaxed).min(plan.total);
        while k < plan.total && plan.schedule.offset(k) <= stopped_after {
            plan.drop_request(k);
            k += 1;
        }
    }
    let per_stage: Vec<u64> = plan
        .dropped
        .iter()
        .map(|d| d.load(Ordering::Relaxed))
        .collect();
    Ok(Dropped {
        total: per_stage.iter().sum(),
        per_stage,
    })
}

async fn work(context: Arc<RunContext>, plan: Arc<Plan>, id: usize) {
    let mut client = Client::new(
        id,
        context.targets.clone(),
        Arc::clone(&context.template),
        &context.config,
    );
    let mut batch = Batch::new();
    while !context.is_stopping() {
        let k = plan.next.fetch_add(1, Ordering::Relaxed);
        if k >= plan.total {
            break;
        }
        let intended = plan.intended(&context, k);
        let mut now = Instant::now();
        while now < intended && !context.is_stopping() {
            sleep_until(intended.min(now + SLEEP_SLICE)).await;
            now = Instant::now();
        }
        if context.is_stopping() {
            // Taken but not sent: owed only if it was already due.
            if context.stopped_at().is_some_and(|at| intended <= at) {
                plan.drop_request(k);
            }
            break;
        }
        let behind = now.saturating_duration_since(intended);
        if behind > context.config.timeout {
            plan.drop_request(k);
            continue;
        }
        let late = behind > context.config.late_after;
        let call = client.call().await;
        let outcome = Outcome::new(&call, intended, context.start, late).in_stage(plan.stage_of(k));
        batch.push(outcome, call.finished, &context.recorder);
        tokio::task::consume_budget().await;
    }
    batch.flush(&context.recorder);
}
