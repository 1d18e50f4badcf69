//! The load engine: closed- or open-loop HTTP/1.1 load, constant, ramped or in
//! stages, with HDR latency histograms and coordinated-omission correction.
//!
//! - [`run`] sends the load a [`LoadConfig`] describes to [`Targets`] and
//!   returns a [`LoadResult`]; a [`CancellationToken`](tokio_util::sync::CancellationToken)
//!   stops it early and still yields a result.
//! - Closed loop ([`Mode::Closed`]): N workers, each sending its next request
//!   when the previous one ended. Open loop ([`Mode::Open`]): requests start at
//!   scheduled times whatever the responses do, and latency counts from the
//!   intended time; requests the engine could not start on time are reported
//!   as late or dropped ([`LoadResult::shortfall`]). Staged runs ([`Mode::Staged`],
//!   as k6's `stages`) ramp the concurrency or the rate linearly from stage to
//!   stage, in one run: one histogram, one per-second series, and the shortfall
//!   rules applied to each stage.
//! - Memory does not grow with the request count: outcomes go into histograms
//!   and per-second counters, never into a list.
//! - The HTTP/1.1 client is minimal on purpose (see `connection.rs` for the
//!   measurements behind that choice): the engine must never be the bottleneck
//!   of what it measures.
//!
//! ```no_run
//! # async fn demo() -> Result<(), scaleproof_load::LoadError> {
//! use scaleproof_load::{LoadConfig, Rate, Stop, Targets, run};
//! use std::time::Duration;
//! use tokio_util::sync::CancellationToken;
//!
//! let targets = Targets::parse(["http://127.0.0.1:8000"])?;
//! let config = LoadConfig::open(Rate::constant(200.0), Stop::Duration(Duration::from_secs(30)));
//! let result = run(&config, &targets, &CancellationToken::new()).await?;
//! assert!(result.delivered_as_promised());
//! # Ok(()) }
//! ```

mod client;
mod closed;
mod config;
mod connection;
mod context;
mod engine;
mod open;
mod progress;
mod recorder;
mod response;
mod result;
mod schedule;
mod summary;
mod targets;

pub use config::{
    DEFAULT_CONCURRENCY, DEFAULT_CONNECT_TIMEOUT, DEFAULT_LATE_AFTER, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_PATH, DEFAULT_REQUESTS, DEFAULT_TIMEOUT, IRIS_SAMPLE, LoadConfig, Mode, Progress,
    Ramped, Rate, RequestSpec, Stage, Stages, Stop,
};
pub use engine::run;
pub use result::{
    ErrorCounts, LATE_TOLERANCE, LatencySummary, LoadMode, LoadResult, Promised, SecondStats,
    Shortfall, StageResult,
};
pub use targets::{Endpoint, Targets};

/// Why a run could not start (or an engine bug). Failed requests are not
/// errors: they are counted in the [`LoadResult`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid load configuration: {0}")]
    InvalidConfig(String),
    #[error("invalid target {url:?}: {reason}")]
    InvalidTarget { url: String, reason: String },
    #[error("the target set cannot be empty: a run needs at least one endpoint")]
    EmptyTargets,
    #[error("a load worker failed: {0}")]
    Worker(String),
}
