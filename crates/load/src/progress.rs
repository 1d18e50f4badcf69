//! Shows a run's progress on stderr: a live line on a terminal, a plain line
//! every few seconds otherwise (readable in CI logs).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::recorder::Recorder;

const TERMINAL_REFRESH: Duration = Duration::from_millis(250);
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// A running progress display; [`ProgressTask::finish`] stops and clears it.
pub(crate) struct ProgressTask {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ProgressTask {
    /// Starts reporting; `total` is the number of requests when known.
    pub(crate) fn start(recorder: Arc<Recorder>, start: Instant, total: Option<u64>) -> Self {
        let stop = CancellationToken::new();
        let task = if std::io::stderr().is_terminal() {
            tokio::spawn(live_line(recorder, start, total, stop.clone()))
        } else {
            tokio::spawn(log_lines(recorder, start, total, stop.clone()))
        };
        Self { stop, task }
    }

    pub(crate) async fn finish(self) {
        self.stop.cancel();
        // The task only draws; if it panicked, the run's result is still valid.
        let _ = self.task.await;
    }
}

/// The rate over the last interval and the text shared by both displays.
struct Reading {
    done: u64,
    message: String,
}

fn read(
    recorder: &Recorder,
    start: Instant,
    previous: &mut (Instant, u64),
    total: Option<u64>,
) -> Reading {
    let now = Instant::now();
    let second = now.saturating_duration_since(start).as_secs();
    // The second that just completed has a full set of latencies.
    let progress = recorder.progress(second.saturating_sub(1));
    let elapsed = now.saturating_duration_since(previous.0).as_secs_f64();
    let rate = if elapsed > 0.0 {
        progress.done.saturating_sub(previous.1) as f64 / elapsed
    } else {
        0.0
    };
    *previous = (now, progress.done);
    let p95 = progress
        .p95_ms
        .map_or_else(|| "-".to_owned(), |p| format!("{p:.1} ms"));
    let done = match total {
        Some(total) => format!("{}/{total}", progress.done),
        None => progress.done.to_string(),
    };
    Reading {
        done: progress.done,
        message: format!(
            "{done} done, {rate:.0} req/s, {} failed, p95 {p95}",
            progress.failed
        ),
    }
}

async fn live_line(
    recorder: Arc<Recorder>,
    start: Instant,
    total: Option<u64>,
    stop: CancellationToken,
) {
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{elapsed:>4} [{bar:30}] {msg}"
    } else {
        "{elapsed:>4} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut previous = (start, 0);
    let mut ticks = tokio::time::interval(TERMINAL_REFRESH);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let reading = read(&recorder, start, &mut previous, total);
        bar.set_position(reading.done);
        bar.set_message(reading.message);
    }
    bar.finish_and_clear();
}

async fn log_lines(
    recorder: Arc<Recorder>,
    start: Instant,
    total: Option<u64>,
    stop: CancellationToken,
) {
    let mut previous = (start, 0);
    let mut ticks = tokio::time::interval_at(start + LOG_INTERVAL, LOG_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let reading = read(&recorder, start, &mut previous, total);
        let elapsed = start.elapsed().as_secs();
        tracing::info!("load: {elapsed:>4}s {}", reading.message);
    }
}
