//! What a load run does: its mode (closed or open loop), when it stops, and the
//! request it sends. Validated once before a run so the hot path never re-checks.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};

use super::LoadError;

/// The Iris sample the original `load_test.py` posted, the default request body.
pub const IRIS_SAMPLE: &str =
    r#"{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}"#;

/// The default request path (the iris-server's prediction endpoint).
pub const DEFAULT_PATH: &str = "/predict";

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this many requests have been sent (open loop: scheduled).
    Requests(u64),
    /// When this much time has passed since the start; requests in flight then
    /// still complete and are counted.
    Duration(Duration),
}

/// Arrival rate of an open-loop run: constant, or a linear ramp from
/// `start_per_s` to `end_per_s` over `ramp`, then constant at `end_per_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Rate at the start of the run, requests per second.
    pub start_per_s: f64,
    /// Rate reached at the end of the ramp (equal to `start_per_s` when constant).
    pub end_per_s: f64,
    /// Length of the ramp (zero when constant).
    pub ramp: Duration,
}

impl Rate {
    /// A constant arrival rate.
    pub fn constant(per_s: f64) -> Self {
        Self {
            start_per_s: per_s,
            end_per_s: per_s,
            ramp: Duration::ZERO,
        }
    }

    /// A linear ramp from `from_per_s` to `to_per_s` over `over`, constant afterwards.
    pub fn ramp(from_per_s: f64, to_per_s: f64, over: Duration) -> Self {
        Self {
            start_per_s: from_per_s,
            end_per_s: to_per_s,
            ramp: over,
        }
    }

    /// Whether the rate changes during the run.
    pub fn is_ramp(&self) -> bool {
        !self.ramp.is_zero() && self.start_per_s != self.end_per_s
    }

    fn validate(&self) -> Result<(), LoadError> {
        for (name, value) in [
            ("start rate", self.start_per_s),
            ("end rate", self.end_per_s),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(invalid(format!(
                    "{name} must be a positive number of requests per second, got {value}"
                )));
            }
        }
        if self.ramp.is_zero() && self.start_per_s != self.end_per_s {
            return Err(invalid("a ramp between two rates needs a non-zero length"));
        }
        Ok(())
    }
}

/// What the stages of a staged run move: the number of closed-loop workers, or the
/// open-loop arrival rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ramped {
    Concurrency,
    Rate,
}

/// One stage of a staged run: over `duration`, the level moves linearly from where
/// the previous stage ended (the first stage from [`Stages::start`]) to `target`
/// (as k6's `stages`; equal levels hold it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    /// Workers (concurrency) or requests per second (rate) at the stage's end.
    pub target: f64,
}

/// A run in stages, ending when the last one does.
#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    pub ramped: Ramped,
    /// The level when the run starts.
    pub start: f64,
    pub stages: Vec<Stage>,
}

impl Stages {
    /// The length of the whole run.
    pub fn total(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// Where stage `index` starts and ends (seconds from the run's start), and the
    /// levels it ramps between.
    pub fn bounds(&self, index: usize) -> Option<(f64, f64, f64, f64)> {
        let mut at = 0.0;
        let mut from = self.start;
        for (i, stage) in self.stages.iter().enumerate() {
            let end = at + stage.duration.as_secs_f64();
            if i == index {
                return Some((at, end, from, stage.target));
            }
            at = end;
            from = stage.target;
        }
        None
    }

    /// The stage running at `t` (the last one from its end on).
    pub fn stage_at(&self, t: Duration) -> usize {
        let t = t.as_secs_f64();
        let mut end = 0.0;
        for (i, stage) in self.stages.iter().enumerate() {
            end += stage.duration.as_secs_f64();
            if t < end {
                return i;
            }
        }
        self.stages.len().saturating_sub(1)
    }

    /// The level at `t`, interpolated within its stage.
    pub fn level_at(&self, t: Duration) -> f64 {
        let index = self.stage_at(t);
        match self.bounds(index) {
            Some((start, end, from, to)) if end > start => {
                let f = ((t.as_secs_f64() - start) / (end - start)).clamp(0.0, 1.0);
                from + (to - from) * f
            }
            Some((_, _, _, to)) => to,
            None => self.start,
        }
    }

    /// The highest level any stage reaches.
    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.target)
            .fold(self.start, f64::max)
    }

    fn validate(&self) -> Result<(), LoadError> {
        let what = match self.ramped {
            Ramped::Concurrency => "concurrency",
            Ramped::Rate => "rate",
        };
        if self.stages.is_empty() {
            return Err(invalid("a staged run needs at least one stage"));
        }
        for (i, level) in std::iter::once(self.start)
            .chain(self.stages.iter().map(|s| s.target))
            .enumerate()
        {
            if !(level.is_finite() && level >= 0.0) {
                let at = if i == 0 {
                    "the start".to_string()
                } else {
                    format!("stage {i}")
                };
                return Err(invalid(format!(
                    "{what} of {at} must be a number >= 0, got {level}"
                )));
            }
            if self.ramped == Ramped::Concurrency && level.fract() != 0.0 {
                return Err(invalid(format!(
                    "concurrency is a number of workers, got {level}"
                )));
            }
        }
        if let Some(i) = self.stages.iter().position(|s| s.duration.is_zero()) {
            return Err(invalid(format!("stage {} has no duration", i + 1)));
        }
        if self.peak() <= 0.0 {
            return Err(invalid(format!(
                "every stage's {what} is 0: nothing would be sent"
            )));
        }
        Ok(())
    }
}

/// Closed loop (each worker sends its next request when the previous one is done)
/// or open loop (requests start at scheduled times whatever the responses do).
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// `concurrency` workers, each with its own keep-alive connection(s).
    Closed { concurrency: u32, stop: Stop },
    /// Requests arrive at `rate`; at most `max_in_flight` are outstanding at once
    /// (beyond that, requests start late and are counted as such).
    Open {
        rate: Rate,
        stop: Stop,
        max_in_flight: u32,
    },
    /// A run in stages that ramp the concurrency (closed loop) or the rate (open
    /// loop, with `max_in_flight` as in [`Mode::Open`]); it ends with the last stage.
    Staged { stages: Stages, max_in_flight: u32 },
}

impl Mode {
    /// When the run ends.
    pub fn stop(&self) -> Stop {
        match self {
            Mode::Closed { stop, .. } | Mode::Open { stop, .. } => *stop,
            Mode::Staged { stages, .. } => Stop::Duration(stages.total()),
        }
    }

    /// Whether requests start on a schedule (open loop) rather than when a worker is
    /// free (closed loop).
    pub fn is_open(&self) -> bool {
        match self {
            Mode::Closed { .. } => false,
            Mode::Open { .. } => true,
            Mode::Staged { stages, .. } => stages.ramped == Ramped::Rate,
        }
    }
}

/// The HTTP request every call sends (bodies are cycled when there are several).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    pub method: Method,
    /// Origin-form path and query, starting with `/`.
    pub path: String,
    /// Extra headers (the engine adds `Host` and `Content-Length`).
    pub headers: HeaderMap,
    /// Request bodies, used round-robin; empty means no body.
    pub bodies: Vec<Bytes>,
}

impl RequestSpec {
    /// `POST /predict` with the Iris sample as a JSON body: what `load_test.py` sent.
    pub fn iris_predict() -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Self {
            method: Method::POST,
            path: DEFAULT_PATH.to_owned(),
            headers,
            bodies: vec![Bytes::from_static(IRIS_SAMPLE.as_bytes())],
        }
    }

    fn validate(&self) -> Result<(), LoadError> {
        if !self.path.starts_with('/') {
            return Err(invalid(format!(
                "request path must start with '/', got {:?}",
                self.path
            )));
        }
        http::uri::PathAndQuery::try_from(self.path.as_str())
            .map_err(|e| invalid(format!("request path {:?}: {e}", self.path)))?;
        for framing in [header::CONTENT_LENGTH, header::TRANSFER_ENCODING] {
            if self.headers.contains_key(&framing) {
                return Err(invalid(format!(
                    "the engine frames the body itself; do not set {framing}"
                )));
            }
        }
        Ok(())
    }
}

impl Default for RequestSpec {
    fn default() -> Self {
        Self::iris_predict()
    }
}

/// Whether and how a run shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// Nothing (library callers and tests).
    #[default]
    Quiet,
    /// A live line on a terminal, a plain line every few seconds otherwise (CI logs).
    Auto,
}

/// Everything a run needs except the targets and the cancellation token.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    pub mode: Mode,
    pub request: RequestSpec,
    /// Per-request timeout, from the actual send (connect included).
    pub timeout: Duration,
    /// Timeout for establishing a TCP connection.
    pub connect_timeout: Duration,
    /// Open loop: a request that starts more than this after its intended time
    /// counts as late (the engine could not keep its schedule).
    pub late_after: Duration,
    pub progress: Progress,
    /// Requests one connection carries before the engine closes it and opens a new
    /// one (`Some(1)`: no keep-alive; `None`: keep connections as long as the
    /// server does). Behind kube-proxy, which balances connections rather than
    /// requests, this is what lets pods added by a scale-up receive traffic.
    pub requests_per_connection: Option<u32>,
}

/// Defaults of the original script: 1000 requests, 10 workers, closed loop.
pub const DEFAULT_REQUESTS: u64 = 1000;
pub const DEFAULT_CONCURRENCY: u32 = 10;
/// Open-loop cap on outstanding requests: high enough that a saturated service,
/// not the engine, decides latency, while bounding sockets and memory.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1000;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Tokio timers tick in milliseconds and a noisy 2-core machine adds a few more;
/// 10 ms keeps "late" meaning "the engine fell behind", not "timer jitter".
pub const DEFAULT_LATE_AFTER: Duration = Duration::from_millis(10);

impl LoadConfig {
    /// A closed-loop run with `concurrency` workers and default request and timeouts.
    pub fn closed(concurrency: u32, stop: Stop) -> Self {
        Self::with_mode(Mode::Closed { concurrency, stop })
    }

    /// A staged run (concurrency or rate, as `stages.ramped` says) with the default
    /// in-flight cap.
    pub fn staged(stages: Stages) -> Self {
        Self::with_mode(Mode::Staged {
            stages,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        })
    }

    /// An open-loop run at `rate` with the default in-flight cap.
    pub fn open(rate: Rate, stop: Stop) -> Self {
        Self::with_mode(Mode::Open {
            rate,
            stop,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        })
    }

    fn with_mode(mode: Mode) -> Self {
        Self {
            mode,
            request: RequestSpec::default(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            late_after: DEFAULT_LATE_AFTER,
            progress: Progress::Quiet,
            requests_per_connection: None,
        }
    }

    /// Checks every number and the request once, before the run starts.
    pub fn validate(&self) -> Result<(), LoadError> {
        if self.requests_per_connection == Some(0) {
            return Err(invalid("requests per connection must be at least 1"));
        }
        match &self.mode {
            Mode::Closed { concurrency, stop } => {
                if *concurrency == 0 {
                    return Err(invalid("concurrency must be at least 1"));
                }
                validate_stop(stop)?;
            }
            Mode::Open {
                rate,
                stop,
                max_in_flight,
            } => {
                rate.validate()?;
                validate_stop(stop)?;
                if *max_in_flight == 0 {
                    return Err(invalid("the in-flight cap must be at least 1"));
                }
            }
            Mode::Staged {
                stages,
                max_in_flight,
            } => {
                stages.validate()?;
                if *max_in_flight == 0 {
                    return Err(invalid("the in-flight cap must be at least 1"));
                }
            }
        }
        if self.timeout.is_zero() {
            return Err(invalid("the request timeout must be positive"));
        }
        if self.connect_timeout.is_zero() {
            return Err(invalid("the connect timeout must be positive"));
        }
        self.request.validate()
    }
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self::closed(DEFAULT_CONCURRENCY, Stop::Requests(DEFAULT_REQUESTS))
    }
}

fn validate_stop(stop: &Stop) -> Result<(), LoadError> {
    match stop {
        Stop::Requests(0) => Err(invalid("the request count must be at least 1")),
        Stop::Duration(d) if d.is_zero() => Err(invalid("the duration must be positive")),
        _ => Ok(()),
    }
}

fn invalid(message: impl Into<String>) -> LoadError {
    LoadError::InvalidConfig(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_ramp_from_the_previous_level_and_hold_after_the_last() {
        let stages = Stages {
            ramped: Ramped::Rate,
            start: 0.0,
            stages: vec![
                Stage {
                    duration: Duration::from_secs(10),
                    target: 100.0,
                },
                Stage {
                    duration: Duration::from_secs(20),
                    target: 100.0,
                },
                Stage {
                    duration: Duration::from_secs(2),
                    target: 4.0,
                },
            ],
        };
        assert_eq!(stages.total(), Duration::from_secs(32));
        assert_eq!(stages.level_at(Duration::from_secs(5)), 50.0);
        assert_eq!(stages.level_at(Duration::from_secs(20)), 100.0);
        assert_eq!(stages.level_at(Duration::from_secs(31)), 52.0);
        assert_eq!(stages.level_at(Duration::from_secs(60)), 4.0);
        assert_eq!(stages.stage_at(Duration::from_secs(10)), 1);
        assert_eq!(stages.bounds(2), Some((30.0, 32.0, 100.0, 4.0)));
        assert_eq!(stages.peak(), 100.0);
    }

    #[test]
    fn default_is_the_original_scripts_run() {
        let config = LoadConfig::default();
        assert_eq!(
            config.mode,
            Mode::Closed {
                concurrency: 10,
                stop: Stop::Requests(1000)
            }
        );
        assert_eq!(config.request.method, Method::POST);
        assert_eq!(config.request.path, "/predict");
        assert_eq!(config.request.bodies[0], IRIS_SAMPLE.as_bytes());
        config.validate().unwrap();
    }

    #[test]
    fn rejects_zero_and_non_finite_numbers() {
        assert!(LoadConfig::closed(0, Stop::Requests(1)).validate().is_err());
        assert!(LoadConfig::closed(1, Stop::Requests(0)).validate().is_err());
        assert!(
            LoadConfig::closed(1, Stop::Duration(Duration::ZERO))
                .validate()
                .is_err()
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(
                LoadConfig::open(Rate::constant(bad), Stop::Requests(1))
                    .validate()
                    .is_err()
            );
        }
        let zero_length_ramp = Rate::ramp(1.0, 2.0, Duration::ZERO);
        assert!(
            LoadConfig::open(zero_length_ramp, Stop::Requests(1))
                .validate()
                .is_err()
        );
        let mut config = LoadConfig::default();
        config.request.path = "predict".into();
        assert!(config.validate().is_err());
        let staged = |ramped, start, targets: &[(u64, f64)]| {
            LoadConfig::staged(Stages {
                ramped,
                start,
                stages: targets
                    .iter()
                    .map(|(s, target)| Stage {
                        duration: Duration::from_secs(*s),
                        target: *target,
                    })
                    .collect(),
            })
            .validate()
        };
        assert!(staged(Ramped::Rate, 0.0, &[(10, 50.0), (5, 0.0)]).is_ok());
        assert!(staged(Ramped::Rate, 0.0, &[]).is_err(), "no stages");
        assert!(
            staged(Ramped::Rate, 0.0, &[(10, 0.0)]).is_err(),
            "nothing sent"
        );
        assert!(
            staged(Ramped::Rate, 0.0, &[(0, 5.0)]).is_err(),
            "no duration"
        );
        assert!(staged(Ramped::Rate, 0.0, &[(1, -1.0)]).is_err());
        assert!(
            staged(Ramped::Concurrency, 0.0, &[(1, 2.5)]).is_err(),
            "half a worker"
        );
        let mut config = LoadConfig::default();
        config
            .request
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        assert!(config.validate().is_err());
    }
}
