//! The load engine: closed- or open-loop HTTP/1.1 load with HDR latency
//! histograms, coordinated-omission correction and a changeable target set.
//!
//! ```no_run
//! # async fn demo() -> Result<(), scaleproof::load::LoadError> {
//! use scaleproof::load::{LoadConfig, Rate, Stop, Targets, run};
//! use std::time::Duration;
//! use tokio_util::sync::CancellationToken;
//!
//! let targets = Targets::parse(["http://127.0.0.1:8000"])?;
//! let config = LoadConfig::open(Rate::constant(200.0), Stop::Duration(Duration::from_secs(30)));
//! let result = run(&config, &targets, &CancellationToken::new()).await?;
//! assert!(result.delivered_as_promised());
//! # Ok(()) }
//! ```

pub mod cli;
mod client;
mod closed;
mod config;
mod connection;
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
    DEFAULT_PATH, DEFAULT_REQUESTS, DEFAULT_TIMEOUT, IRIS_SAMPLE, LoadConfig, Mode, Progress, Rate,
    RequestSpec, Stop,
};
pub use engine::run;
pub use result::{
    ErrorCounts, LATE_TOLERANCE, LatencySummary, LoadMode, LoadResult, Promised, SecondStats,
    Shortfall,
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
