//! Tallies outcomes into HDR histograms and counters, never storing requests.
//!
//! Workers append outcomes to a small local batch and hand over the whole batch
//! under one short lock (every [`BATCH_LEN`] requests or [`BATCH_AGE`]), so the
//! request path takes no lock and memory stays flat however many requests run.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::client::Call;
use super::result::{ErrorCounts, ErrorKind, LatencySummary, SecondStats};

/// Outcomes a worker collects before handing them to the recorder.
pub(crate) const BATCH_LEN: usize = 256;
/// A batch older than this is handed over even when not full, so progress stays live.
pub(crate) const BATCH_AGE: Duration = Duration::from_millis(200);

/// One finished request, as the recorder needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// Second of the run in which the request completed.
    second: u32,
    /// From the intended send time, microseconds.
    corrected_us: u64,
    /// From the actual send, microseconds.
    service_us: u64,
    result: Result<u16, ErrorKind>,
    late: bool,
    /// The stage of a staged run the request belongs to (0 otherwise).
    stage: u16,
}

impl Outcome {
    /// Builds the outcome of `call`, intended to start at `intended` (the actual
    /// start in a closed loop), in a run that started at `run_start`.
    pub(crate) fn new(call: &Call, intended: Instant, run_start: Instant, late: bool) -> Self {
        let second = call.finished.saturating_duration_since(run_start).as_secs();
        Self {
            second: u32::try_from(second).unwrap_or(u32::MAX),
            corrected_us: micros(call.finished.saturating_duration_since(intended)),
            service_us: micros(call.finished.saturating_duration_since(call.started)),
            result: call.outcome,
            late,
            stage: 0,
        }
    }

    /// The same outcome, counted in stage `stage`.
    pub(crate) fn in_stage(mut self, stage: usize) -> Self {
        self.stage = u16::try_from(stage).unwrap_or(u16::MAX);
        self
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A worker's unrecorded outcomes.
pub(crate) struct Batch {
    outcomes: Vec<Outcome>,
    opened: Instant,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Self {
            outcomes: Vec::with_capacity(BATCH_LEN),
            opened: Instant::now(),
        }
    }

    /// Adds an outcome, handing the batch to `recorder` when full or old.
    pub(crate) fn push(&mut self, outcome: Outcome, now: Instant, recorder: &Recorder) {
        if self.outcomes.is_empty() {
            self.opened = now;
        }
        self.outcomes.push(outcome);
        if self.outcomes.len() >= BATCH_LEN || now.duration_since(self.opened) >= BATCH_AGE {
            self.flush(recorder);
        }
    }

    /// Hands whatever is collected to `recorder`.
    pub(crate) fn flush(&mut self, recorder: &Recorder) {
        if !self.outcomes.is_empty() {
            recorder.record(&self.outcomes);
            self.outcomes.clear();
        }
    }
}

/// The run's shared tally.
pub(crate) struct Recorder {
    tally: Mutex<Tally>,
}

/// Counts for the progress display.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Progress {
    pub(crate) done: u64,
    pub(crate) failed: u64,
    /// p95 of the given second, when any response completed in it.
    pub(crate) p95_ms: Option<f64>,
}

/// Everything measured, ready to go into a [`super::LoadResult`].
pub(crate) struct Totals {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) status_counts: BTreeMap<u16, u64>,
    pub(crate) errors: ErrorCounts,
    pub(crate) late: u64,
    pub(crate) latency_ms: Option<LatencySummary>,
    pub(crate) service_time_ms: Option<LatencySummary>,
    pub(crate) timeline: Vec<SecondStats>,
    /// Per stage (index = stage): requests sent and how many of them started late.
    pub(crate) stages: Vec<StageCount>,
}

/// What one stage of a run sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StageCount {
    pub(crate) sent: u64,
    pub(crate) late: u64,
}

struct Tally {
    corrected: Histogram<u64>,
    service: Histogram<u64>,
    /// Indexed by status code (0..1000); HTTP statuses are three digits.
    statuses: Vec<u64>,
    errors: ErrorCounts,
    late: u64,
    sent: u64,
    ok: u64,
    failed: u64,
    seconds: Vec<SecondTally>,
    stages: Vec<StageCount>,
}

struct SecondTally {
    requests: u64,
    errors: u64,
    /// Two significant digits suffice for plots and keep a second to a few KiB,
    /// so hour-long runs stay small.
    latency: Histogram<u32>,
}

impl SecondTally {
    fn new() -> Self {
        Self {
            requests: 0,
            errors: 0,
            latency: auto_histogram(2),
        }
    }
}

/// A histogram that grows to fit the largest value recorded.
fn auto_histogram<T: hdrhistogram::Counter>(significant_digits: u8) -> Histogram<T> {
    // Only fails for more than 5 significant digits; ours are constants.
    Histogram::new(significant_digits).expect("2 or 3 significant digits are supported")
}

fn record<T: hdrhistogram::Counter>(histogram: &mut Histogram<T>, micros: u64) {
    // A zero would be below the lowest discernible value; a growing histogram only
    // fails to grow when the value cannot be represented at all: then clamp.
    let value = micros.max(1);
    if histogram.record(value).is_err() {
        histogram.saturating_record(value);
    }
}

impl Recorder {
    /// A recorder whose run-wide histograms already span `expected_max`, so
    /// their memory does not grow with the run (they still grow past it).
    pub(crate) fn new(expected_max: Duration) -> Self {
        let sized = || {
            let mut histogram: Histogram<u64> = auto_histogram(3);
            record(&mut histogram, micros(expected_max));
            histogram.reset();
            histogram
        };
        Self {
            tally: Mutex::new(Tally {
                corrected: sized(),
                service: sized(),
                statuses: vec![0; 1000],
                errors: ErrorCounts::default(),
                late: 0,
                sent: 0,
                ok: 0,
                failed: 0,
                seconds: Vec::new(),
                stages: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        // A panicking worker cannot leave the tally half-updated in a way that
        // matters more than losing the whole run, so keep counting.
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, outcomes: &[Outcome]) {
        let mut tally = self.lock();
        for outcome in outcomes {
            tally.add(outcome);
        }
    }

    /// Counts so far, with the p95 of `second`.
    pub(crate) fn progress(&self, second: u64) -> Progress {
        let tally = self.lock();
        let p95_ms = usize::try_from(second)
            .ok()
            .and_then(|s| tally.seconds.get(s))
            .filter(|s| !s.latency.is_empty())
            .map(|s| ms(s.latency.value_at_quantile(0.95)));
        Progress {
            done: tally.sent,
            failed: tally.failed,
            p95_ms,
        }
    }

    /// The final tally.
    pub(crate) fn totals(&self) -> Totals {
        let tally = self.lock();
        let status_counts = tally
            .statuses
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .filter_map(|(status, count)| Some((u16::try_from(status).ok()?, *count)))
            .collect();
        let timeline = tally
            .seconds
            .iter()
            .enumerate()
            .map(|(second, s)| {
                let quantile =
                    |q: f64| (!s.latency.is_empty()).then(|| ms(s.latency.value_at_quantile(q)));
                SecondStats {
                    t_s: second as f64,
                    requests: s.requests,
                    errors: s.errors,
                    p50_ms: quantile(0.50),
                    p95_ms: quantile(0.95),
                    p99_ms: quantile(0.99),
                }
            })
            .collect();
        Totals {
            sent: tally.sent,
            ok: tally.ok,
            status_counts,
            errors: tally.errors,
            late: tally.late,
            latency_ms: summarize(&tally.corrected),
            service_time_ms: summarize(&tally.service),
            timeline,
            stages: tally.stages.clone(),
        }
    }
}

impl Tally {
    fn add(&mut self, outcome: &Outcome) {
        self.sent += 1;
        self.late += u64::from(outcome.late);
        let stage = usize::from(outcome.stage);
        if self.stages.len() <= stage {
            self.stages.resize_with(stage + 1, StageCount::default);
        }
        self.stages[stage].sent += 1;
        self.stages[stage].late += u64::from(outcome.late);
        let second = outcome.second as usize;
        if self.seconds.len() <= second {
            self.seconds.resize_with(second + 1, SecondTally::new);
        }
        let failed = match outcome.result {
            Ok(status) => {
                if let Some(count) = self.statuses.get_mut(usize::from(status)) {
                    *count += 1;
                }
                record(&mut self.corrected, outcome.corrected_us);
                record(&mut self.service, outcome.service_us);
                record(&mut self.seconds[second].latency, outcome.corrected_us);
                !(200..300).contains(&status)
            }
            Err(kind) => {
                self.errors.add(kind);
                true
            }
        };
        if failed {
            self.failed += 1;
            self.seconds[second].errors += 1;
        } else {
            self.ok += 1;
        }
        self.seconds[second].requests += 1;
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn summarize(histogram: &Histogram<u64>) -> Option<LatencySummary> {
    if histogram.is_empty() {
        return None;
    }
    let q = |quantile: f64| ms(histogram.value_at_quantile(quantile));
    Some(LatencySummary {
        min_ms: ms(histogram.min()),
        mean_ms: histogram.mean() / 1000.0,
        p50_ms: q(0.50),
        p90_ms: q(0.90),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        p99_9_ms: q(0.999),
        max_ms: ms(histogram.max()),
    })
}
