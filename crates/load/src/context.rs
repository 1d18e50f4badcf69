//! What the workers of one run share, and how the engine waits for them: below the
//! engine and both of its modes (open, closed), so they need nothing of each other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::LoadError;
use super::client::RequestTemplate;
use super::config::LoadConfig;
use super::recorder::Recorder;
use super::targets::Targets;

/// What every worker of a run shares.
pub(crate) struct RunContext {
    pub(crate) start: Instant,
    pub(crate) config: LoadConfig,
    pub(crate) targets: Targets,
    pub(crate) template: Arc<RequestTemplate>,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) cancel: CancellationToken,
    /// Mirrors `cancel` for the request path: `CancellationToken::is_cancelled`
    /// takes a mutex, an atomic load does not.
    stopping: AtomicBool,
    /// When the cancellation was seen.
    stopped_at: OnceLock<Instant>,
}

impl RunContext {
    pub(crate) fn new(
        start: Instant,
        config: LoadConfig,
        targets: Targets,
        template: Arc<RequestTemplate>,
        recorder: Arc<Recorder>,
        cancel: CancellationToken,
    ) -> Self {
        RunContext {
            start,
            config,
            targets,
            template,
            recorder,
            cancel,
            stopping: AtomicBool::new(false),
            stopped_at: OnceLock::new(),
        }
    }

    /// Whether the run was cancelled (workers then send nothing new).
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// When the run was cancelled, if it was.
    pub(crate) fn stopped_at(&self) -> Option<Instant> {
        self.stopped_at.get().copied()
    }

    pub(crate) fn stop(&self) {
        // Only the first stop counts; a later one changes nothing.
        let _ = self.stopped_at.set(Instant::now());
        self.stopping.store(true, Ordering::Relaxed);
    }
}

/// Waits for every worker; a panicked worker is an engine bug, reported as such.
pub(crate) async fn join_workers(mut workers: JoinSet<()>) -> Result<(), LoadError> {
    let mut failure = None;
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined {
            failure.get_or_insert_with(|| e.to_string());
        }
    }
    match failure {
        Some(message) => Err(LoadError::Worker(message)),
        None => Ok(()),
    }
}
