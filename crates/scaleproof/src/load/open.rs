//! Open loop: requests start at their scheduled times whatever the responses
//! do, and latency counts from the intended time (coordinated-omission
//! corrected, like wrk2).
//!
//! A dispatcher walks the schedule and hands each due request to an idle
//! worker, starting a new worker (with its own connection) when none is idle,
//! up to the in-flight cap. At the cap the request waits for a worker: it
//! starts late, and the wait counts in its latency. A request that cannot start
//! within the request timeout of its intended time is dropped. Late and dropped
//! requests are reported, never hidden.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use super::LoadError;
use super::client::Client;
use super::config::{Rate, Stop};
use super::engine::{RunContext, join_workers};
use super::recorder::{Batch, Outcome};
use super::schedule::Schedule;

/// A request due at `intended`.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    intended: Instant,
}

/// Runs the schedule; returns how many scheduled requests were dropped.
pub(crate) async fn run(
    context: Arc<RunContext>,
    rate: Rate,
    stop: Stop,
    max_in_flight: u32,
) -> Result<u64, LoadError> {
    let schedule = Schedule::new(rate);
    let total = schedule.total(stop);
    let max_workers = max_in_flight as usize;
    // Workers announce themselves here when they are free for the next ticket.
    let (idle_tx, mut idle_rx) = mpsc::unbounded_channel::<usize>();
    let mut to_worker: Vec<mpsc::Sender<Ticket>> = Vec::new();
    let mut workers = JoinSet::new();
    let mut dropped = 0u64;
    let mut next = 0u64;

    while next < total && !context.is_stopping() {
        let ticket = Ticket {
            intended: context.start + schedule.offset(next),
        };
        if Instant::now() < ticket.intended {
            tokio::select! {
                biased;
                () = context.cancel.cancelled() => break,
                () = sleep_until(ticket.intended) => {}
            }
        }
        let worker = match idle_rx.try_recv() {
            Ok(worker) => Some(worker),
            Err(_) if to_worker.len() < max_workers => {
                let (tx, rx) = mpsc::channel(1);
                let id = to_worker.len();
                to_worker.push(tx);
                workers.spawn(work(Arc::clone(&context), id, ticket, rx, idle_tx.clone()));
                next += 1;
                continue;
            }
            // At the cap: wait for a worker, but not past the point where the
            // request would have timed out anyway, nor past a cancellation.
            Err(_) => tokio::select! {
                biased;
                () = context.cancel.cancelled() => break,
                worker = idle_rx.recv() => worker,
                () = sleep_until(ticket.intended + context.config.timeout) => None,
            },
        };
        let handed_over = worker
            .and_then(|id| to_worker.get(id))
            .is_some_and(|tx| tx.try_send(ticket).is_ok());
        if !handed_over {
            dropped += 1;
        }
        next += 1;
        tokio::task::consume_budget().await;
    }

    if context.cancel.is_cancelled() {
        // Requests already due when the run was cancelled were promised and not
        // sent; the ones not yet due were never owed.
        let cancelled_at = context.start.elapsed();
        while next < total && schedule.offset(next) <= cancelled_at {
            dropped += 1;
            next += 1;
        }
    }
    // Closing the ticket channels lets each worker finish its request and exit.
    drop(to_worker);
    join_workers(workers).await?;
    Ok(dropped)
}

async fn work(
    context: Arc<RunContext>,
    id: usize,
    first: Ticket,
    mut tickets: mpsc::Receiver<Ticket>,
    idle: mpsc::UnboundedSender<usize>,
) {
    let mut client = Client::new(
        id,
        context.targets.clone(),
        Arc::clone(&context.template),
        &context.config,
    );
    let mut batch = Batch::new();
    let mut ticket = Some(first);
    while let Some(Ticket { intended }) = ticket {
        let late = Instant::now().saturating_duration_since(intended) > context.config.late_after;
        let call = client.call().await;
        let outcome = Outcome::new(&call, intended, context.start, late);
        batch.push(outcome, call.finished, &context.recorder);
        if idle.send(id).is_err() {
            break;
        }
        ticket = tickets.recv().await;
    }
    batch.flush(&context.recorder);
}
