//! What a run measured. Field names carry their units (`_ms`, `_per_s`, `_s`).
//! `report.json` and `scaleproof load --json` publish it through their own type
//! (`scaleproof::report::LoadReport`), so this one can change with the engine.

use std::collections::BTreeMap;

/// Closed or open loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    Closed,
    Open,
}

/// Why a request got no HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ErrorKind {
    /// No complete response within the request timeout (or no connection within
    /// the connect timeout).
    Timeout,
    /// Nothing listens on the port.
    ConnectionRefused,
    /// The server closed or reset the connection before a complete response.
    ConnectionReset,
    /// Anything else (DNS, malformed response, ...).
    Other,
}

/// Requests without an HTTP response, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    pub timeout: u64,
    pub connection_refused: u64,
    pub connection_reset: u64,
    pub other: u64,
}

impl ErrorCounts {
    pub(crate) fn add(&mut self, kind: ErrorKind) {
        match kind {
            ErrorKind::Timeout => self.timeout += 1,
            ErrorKind::ConnectionRefused => self.connection_refused += 1,
            ErrorKind::ConnectionReset => self.connection_reset += 1,
            ErrorKind::Other => self.other += 1,
        }
    }

    /// All requests that ended without an HTTP response.
    pub fn total(&self) -> u64 {
        self.timeout + self.connection_refused + self.connection_reset + self.other
    }
}

/// Latency distribution in milliseconds, from an HDR histogram recorded in
/// microseconds with 3 significant digits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}

/// One second of the run, for timeline plots (requests are placed in the second
/// they completed in).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecondStats {
    /// Start of the second, seconds since the run started.
    pub t_s: f64,
    /// Requests that completed in this second (any outcome).
    pub requests: u64,
    /// Of those, the ones that failed (non-2xx or no response).
    pub errors: u64,
    /// Latency percentiles of this second's responses (2 significant digits;
    /// `None` when no response completed in it).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// What the caller asked the engine to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Promised {
    /// Requests to send: the count asked for, or, in an open loop stopped by
    /// duration, the number its schedule contains. `None` for a closed loop
    /// stopped by duration.
    pub requests: Option<u64>,
    /// Run length asked for, when the run is stopped by time.
    pub duration_s: Option<f64>,
    /// Closed loop: number of workers.
    pub concurrency: Option<u32>,
    /// Open loop: arrival rate at the start.
    pub rate_per_s: Option<f64>,
    /// Open loop with a ramp: rate at the end of the ramp, and the ramp's length.
    pub ramp_to_per_s: Option<f64>,
    pub ramp_over_s: Option<f64>,
    /// Open loop: cap on outstanding requests.
    pub max_in_flight: Option<u32>,
    /// Open loop: a request starting later than this after its intended time is late.
    pub late_after_ms: Option<f64>,
    pub timeout_s: f64,
    /// A staged run: what each stage ramps and to which level (`None` otherwise).
    pub stages: Option<crate::config::Stages>,
}

/// What one stage of a staged run delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct StageResult {
    /// 1-based, as people count stages.
    pub number: usize,
    /// When the stage started and ended, seconds from the run's start.
    pub start_s: f64,
    pub end_s: f64,
    /// The level it ramped from and to (workers, or requests per second).
    pub from: f64,
    pub to: f64,
    /// Requests the stage's schedule holds (rate stages; `None` for concurrency).
    pub promised: Option<u64>,
    /// Requests sent in the stage (open loop: by intended time; closed: by send time).
    pub sent: u64,
    /// Of those, the ones that started late (rate stages).
    pub late: u64,
    /// Scheduled requests of the stage never sent (rate stages).
    pub dropped: u64,
}

/// How a run fell short of its promise (see [`LoadResult::shortfall`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Shortfall {
    /// Promised requests that were never sent.
    pub missing: u64,
    /// Open loop: requests sent later than `late_after_ms` after their intended time.
    pub late: u64,
    /// Open loop: scheduled requests that could not start within their timeout.
    pub dropped: u64,
    /// Human-readable reasons, one per failed check.
    pub reasons: Vec<String>,
}

/// Share of sent requests that may start late before the run counts as not
/// having delivered its schedule (timer hiccups on a noisy machine are normal),
/// rounded up to a whole request: one hiccup in a short run (60 requests at 2 req/s
/// beside a busy lane) is a hiccup, not an engine that fell behind.
pub const LATE_TOLERANCE: f64 = 0.01;

/// How many of `sent` requests may start late: [`LATE_TOLERANCE`] of them, rounded
/// up to a whole request.
pub fn late_allowed(sent: u64) -> u64 {
    (sent as f64 * LATE_TOLERANCE).ceil() as u64
}

/// The measurement of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadResult {
    pub mode: LoadMode,
    pub promised: Promised,
    /// The run was stopped early by its cancellation token.
    pub cancelled: bool,
    /// Requests that were sent and ended (with a response or an error):
    /// `sent == ok + failed`.
    pub sent: u64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Non-2xx responses plus requests without a response.
    pub failed: u64,
    /// Responses by HTTP status code.
    pub status_counts: BTreeMap<u16, u64>,
    /// Requests without a response, by cause.
    pub errors: ErrorCounts,
    /// `ok / sent` (0 when nothing was sent). Dropped requests are not in `sent`:
    /// they are the engine's shortfall, reported by `shortfall`.
    pub success_rate: f64,
    /// `sent / duration_s`.
    pub throughput_per_s: f64,
    /// From the start until the last request ended.
    pub duration_s: f64,
    /// Open loop: requests sent later than `late_after_ms` after their intended
    /// time because the in-flight cap was reached or the client was saturated
    /// (0 in a closed loop).
    pub late: u64,
    /// Open loop: scheduled requests never sent because they could not start
    /// within the request timeout of their intended time, or were due before a
    /// cancellation (0 in a closed loop).
    pub dropped: u64,
    /// Latency from the intended send time (coordinated-omission corrected). In a
    /// closed loop the intended time is the actual send, so it equals
    /// `service_time_ms`. Only requests with an HTTP response are timed; `None`
    /// when there was none.
    pub latency_ms: Option<LatencySummary>,
    /// Latency from the actual send (including a connect when one was needed).
    pub service_time_ms: Option<LatencySummary>,
    /// Per-second series (one series across all stages of a staged run).
    pub timeline: Vec<SecondStats>,
    /// A staged run: what each stage delivered (empty otherwise).
    pub stages: Vec<StageResult>,
    /// `None` when the engine delivered what was promised; otherwise how it fell
    /// short. A gate must not judge a service on a run that under-delivered.
    pub shortfall: Option<Shortfall>,
}

impl LoadResult {
    /// Too many late requests among `sent`, as a reason (prefixed with `what`).
    fn late_reason(&self, what: &str, late: u64, sent: u64) -> Option<String> {
        (late > late_allowed(sent)).then(|| {
            format!(
                "{what}{late} requests started more than {} ms late (more than {:.0} % of {sent})",
                self.promised.late_after_ms.unwrap_or_default(),
                LATE_TOLERANCE * 100.0,
            )
        })
    }

    /// Whether the engine delivered what was promised (all requests, on schedule,
    /// not cancelled).
    pub fn delivered_as_promised(&self) -> bool {
        self.shortfall.is_none()
    }

    /// Compares what was delivered with the promise.
    pub(crate) fn assess(&self) -> Option<Shortfall> {
        let mut reasons = Vec::new();
        if self.cancelled {
            reasons.push(format!("cancelled after {:.1} s", self.duration_s));
        }
        let missing = self
            .promised
            .requests
            .map_or(0, |promised| promised.saturating_sub(self.sent));
        if missing > 0 {
            reasons.push(format!(
                "sent {} of {} promised requests",
                self.sent,
                missing + self.sent
            ));
        }
        if self.stages.is_empty() {
            if self.dropped > 0 {
                reasons.push(format!(
                    "{} scheduled requests could not start within the {} s timeout",
                    self.dropped, self.promised.timeout_s
                ));
            }
            if let Some(reason) = self.late_reason("", self.late, self.sent) {
                reasons.push(reason);
            }
        }
        // A staged run is judged stage by stage: a late ramp-up cannot hide behind a
        // punctual trickle.
        for stage in &self.stages {
            let name = format!(
                "stage {} ({:.0}-{:.0} s, {} -> {}): ",
                stage.number, stage.start_s, stage.end_s, stage.from, stage.to
            );
            if let Some(promised) = stage.promised
                && !self.cancelled
                && stage.sent + stage.dropped < promised
            {
                reasons.push(format!(
                    "{name}sent {} of {promised} scheduled requests",
                    stage.sent
                ));
            }
            if stage.dropped > 0 {
                reasons.push(format!(
                    "{name}{} scheduled requests could not start within the {} s timeout",
                    stage.dropped, self.promised.timeout_s
                ));
            }
            if let Some(reason) = self.late_reason(&name, stage.late, stage.sent) {
                reasons.push(reason);
            }
        }
        if reasons.is_empty() {
            None
        } else {
            Some(Shortfall {
                missing,
                late: self.late,
                dropped: self.dropped,
                reasons,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::late_allowed;

    #[test]
    fn one_late_request_in_a_short_run_is_a_hiccup_and_one_percent_holds_beyond() {
        assert_eq!(late_allowed(0), 0, "nothing sent, nothing late");
        assert_eq!(
            late_allowed(60),
            1,
            "normal-load's 60 requests tolerate one"
        );
        assert_eq!(late_allowed(100), 1);
        assert_eq!(late_allowed(101), 2);
        assert_eq!(late_allowed(1000), 10);
    }
}
