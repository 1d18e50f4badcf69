//! Serving on a listener, with start-up training and a graceful drain on shutdown.
//!
//! Shutdown runs in two phases, both within the drain timeout:
//! 1. The moment the shutdown future resolves, `/ready` turns 503, but the listener
//!    keeps accepting and every route keeps answering until no request is in flight.
//!    Load balancers may route a little after a pod is told to stop (Kubernetes'
//!    endpoint removal races SIGTERM); those requests are served rather than refused,
//!    and the 503 from `/ready` is observable by anyone who asks.
//! 2. Once idle, the listener closes and open connections finish their current request
//!    and close (axum's graceful shutdown); then `serve` returns.
//!
//! If the drain timeout passes first, `serve` logs how many requests it abandons and
//! returns anyway, so a stuck client can never keep a terminating pod alive.

use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::api::router;
use crate::config::Config;
use crate::model::IrisModel;
use crate::state::AppState;

/// Serves the API on `listener` until `shutdown` resolves and the drain completes.
///
/// The model trains in the background as serving starts (`/ready` answers 503 until it
/// is done). Returns an error if the model cannot be trained or the listener fails.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_state(
        listener,
        AppState::new(&config),
        config.drain_timeout,
        shutdown,
    )
    .await
}

/// Like [`serve`], but with a caller-made state (which carries the cost settings), so
/// the caller can watch readiness and metrics. A model already installed in the state
/// is kept; otherwise one is trained as serving starts.
pub async fn serve_with_state(
    listener: TcpListener,
    state: AppState,
    drain_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_accepting, stopped) = oneshot::channel::<()>();
    let server = axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(async move {
            // A dropped sender (lifecycle failed) also stops the server.
            let _ = stopped.await;
        })
        .into_future();
    let mut server = pin!(server);
    let lifecycle = pin!(lifecycle(
        state.clone(),
        drain_timeout,
        shutdown,
        stop_accepting
    ));

    let deadline = tokio::select! {
        result = &mut server => {
            // The server only ends on its own if accepting failed for good.
            return result.context("serving HTTP");
        }
        deadline = lifecycle => deadline?,
    };
    match tokio::time::timeout_at(deadline, server).await {
        Ok(result) => {
            info!("drained; all connections closed");
            result.context("serving HTTP while draining")
        }
        Err(_) => {
            warn!(
                in_flight = state.metrics().in_flight(),
                "drain timeout expired; abandoning the requests still in flight"
            );
            Ok(())
        }
    }
}

/// Trains the model, waits for the shutdown signal, turns readiness off, waits for
/// in-flight requests, then tells the server to stop accepting. Returns the deadline by
/// which the server must be gone.
async fn lifecycle(
    state: AppState,
    drain_timeout: Duration,
    shutdown: impl Future<Output = ()>,
    stop_accepting: oneshot::Sender<()>,
) -> anyhow::Result<Instant> {
    let mut shutdown = pin!(shutdown);
    if state.model().is_none() {
        let training = tokio::task::spawn_blocking(IrisModel::train_embedded);
        tokio::select! {
            () = &mut shutdown => {
                info!("shutdown requested before the model finished training");
            }
            trained = training => {
                let model = trained
                    .context("the model training task failed")?
                    .context("training the Iris model")?;
                info!(
                    training_accuracy = model.training_accuracy(),
                    tree_depth = model.info().tree_depth,
                    "model trained; ready"
                );
                state.install_model(model);
                shutdown.await;
            }
        }
    } else {
        shutdown.await;
    }

    let deadline = Instant::now() + drain_timeout;
    state.begin_drain();
    info!(
        in_flight = state.metrics().in_flight(),
        drain_timeout_s = drain_timeout.as_secs_f64(),
        "shutting down: /ready now answers 503; serving until in-flight requests finish"
    );
    if tokio::time::timeout_at(deadline, state.metrics().wait_idle())
        .await
        .is_ok()
    {
        info!("no request in flight; closing the listener");
    }
    // The receiver is gone only if the server already stopped; nothing left to tell it.
    let _ = stop_accepting.send(());
    Ok(deadline)
}
