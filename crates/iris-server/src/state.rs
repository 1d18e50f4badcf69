//! What every request handler shares: the model (once trained), readiness, metrics and
//! the simulated-cost settings.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::Config;
use crate::memory::MemoryBudget;
use crate::metrics::Metrics;
use crate::model::IrisModel;

/// Whether the server should receive traffic, as `GET /ready` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The model is not trained yet.
    Starting,
    /// Serving normally.
    Ready,
    /// A shutdown signal arrived; in-flight requests are being finished.
    Draining,
}

/// Shared, cheaply clonable handle to the server's state.
#[derive(Debug, Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    model: OnceLock<Arc<IrisModel>>,
    draining: AtomicBool,
    metrics: Metrics,
    cpu_cost: Duration,
    /// Limits how many requests burn the simulated cost at once.
    model_slots: Arc<Semaphore>,
    memory_cost_bytes: u64,
    memory_hold: Duration,
    memory: MemoryBudget,
}

impl AppState {
    /// A state without a model: `/ready` answers 503 until [`AppState::install_model`].
    pub fn new(config: &Config) -> Self {
        AppState {
            shared: Arc::new(Shared {
                model: OnceLock::new(),
                draining: AtomicBool::new(false),
                metrics: Metrics::default(),
                cpu_cost: config.cpu_cost,
                model_slots: Arc::new(Semaphore::new(config.model_threads.max(1))),
                memory_cost_bytes: config.memory_cost_bytes,
                memory_hold: config.memory_hold,
                memory: MemoryBudget::default(),
            }),
        }
    }

    /// A state with `model` already installed (handy for in-process use and tests).
    pub fn with_model(config: &Config, model: IrisModel) -> Self {
        let state = Self::new(config);
        state.install_model(model);
        state
    }

    /// Makes `model` the one predictions use. The first model installed stays; returns
    /// whether this call installed it.
    pub fn install_model(&self, model: IrisModel) -> bool {
        self.shared.model.set(Arc::new(model)).is_ok()
    }

    /// The trained model, if training has finished.
    pub fn model(&self) -> Option<Arc<IrisModel>> {
        self.shared.model.get().cloned()
    }

    /// Turns readiness off for good: from now on `/ready` answers 503.
    pub fn begin_drain(&self) {
        self.shared.draining.store(true, Ordering::Release);
    }

    /// The current readiness.
    pub fn readiness(&self) -> Readiness {
        if self.shared.draining.load(Ordering::Acquire) {
            Readiness::Draining
        } else if self.shared.model.get().is_some() {
            Readiness::Ready
        } else {
            Readiness::Starting
        }
    }

    /// The server's request metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// CPU time burned per prediction request.
    pub fn cpu_cost(&self) -> Duration {
        self.shared.cpu_cost
    }

    /// Bytes held per in-flight prediction request.
    pub fn memory_cost_bytes(&self) -> u64 {
        self.shared.memory_cost_bytes
    }

    /// How long a request keeps its memory cost.
    pub fn memory_hold(&self) -> Duration {
        self.shared.memory_hold
    }

    /// The bytes all in-flight requests hold, and the bound on them.
    pub fn memory_budget(&self) -> &MemoryBudget {
        &self.shared.memory
    }

    pub(crate) fn model_slots(&self) -> Arc<Semaphore> {
        Arc::clone(&self.shared.model_slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_goes_starting_ready_draining() {
        let state = AppState::new(&Config::default());
        assert_eq!(state.readiness(), Readiness::Starting);
        assert!(state.model().is_none());
        let model = IrisModel::train_embedded().unwrap();
        assert!(state.install_model(model.clone()));
        assert!(!state.install_model(model));
        assert_eq!(state.readiness(), Readiness::Ready);
        state.begin_drain();
        assert_eq!(state.readiness(), Readiness::Draining);
    }
}
