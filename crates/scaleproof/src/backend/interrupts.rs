//! Ctrl-C (SIGINT) and SIGTERM, turned into an error of whatever is running.
//!
//! Listening replaces the default "die at once" of these signals, which would skip
//! every destructor and leave a kind cluster (or replicas) behind. The streams are
//! created once, so a signal arriving between two steps is not lost.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::BackendError;

pub struct Interrupts {
    interrupt: Signal,
    terminate: Signal,
}

impl Interrupts {
    pub fn new() -> std::io::Result<Self> {
        Ok(Interrupts {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// `work`, or [`BackendError::Interrupted`] if a signal comes first (`work` is
    /// then dropped).
    pub async fn race<T, E: Into<BackendError>>(
        &mut self,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, BackendError> {
        tokio::select! {
            result = work => result.map_err(Into::into),
            _ = self.interrupt.recv() => Err(BackendError::Interrupted("Ctrl-C")),
            _ = self.terminate.recv() => Err(BackendError::Interrupted("SIGTERM")),
        }
    }

    /// Cancels `token` at the first signal, for work that runs side by side (the
    /// lanes of scenarios) and cannot share one `&mut` race. Abort the task to stop
    /// listening.
    pub fn cancel_on_signal(mut self, token: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let which = tokio::select! {
                _ = self.interrupt.recv() => "Ctrl-C",
                _ = self.terminate.recv() => "SIGTERM",
                _ = token.cancelled() => return,
            };
            tracing::warn!("{which}: stopping once the running scenarios have cleaned up");
            token.cancel();
        })
    }
}
