//! Runs predictions for a request, adding the simulated model cost when configured.
//!
//! With a cost, the work runs on tokio's blocking pool (`spawn_blocking`) behind a
//! semaphore of `model_threads` slots, the way a synchronous Python endpoint runs on
//! its server's thread pool. Burning inline on the async worker would freeze every other
//! connection on that worker for the whole burn, including `/health`, `/ready` and
//! `/metrics`; under a single-threaded runtime even the shutdown signal would wait.
//! Without a cost, the tree walk takes well under a microsecond and runs inline: a
//! thread hand-off would cost more than the work.

use std::sync::Arc;

use crate::cost;
use crate::dataset::Measurements;
use crate::memory::{self, Ballast};
use crate::model::{IrisModel, Prediction};
use crate::state::AppState;

/// Why predictions could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// The model is still being trained.
    #[error("the model is not trained yet")]
    NotReady,
    /// The model work did not finish (it panicked or the runtime is shutting down).
    #[error("the model task failed: {0}")]
    TaskFailed(String),
}

/// Classifies `samples`, holding the configured memory cost for the whole request and
/// burning the configured CPU cost once.
pub async fn classify(
    state: &AppState,
    samples: Vec<Measurements>,
) -> Result<Vec<Prediction>, InferenceError> {
    let model = state.model().ok_or(InferenceError::NotReady)?;
    // Held from before the wait for a model slot: a queued request holds its inputs
    // too. Dropped when this function returns, whatever the outcome.
    let _held = hold_memory(state).await?;
    let cost = state.cpu_cost();
    if cost.is_zero() {
        return Ok(predict_all(&model, &samples));
    }
    let slot = state
        .model_slots()
        .acquire_owned()
        .await
        .map_err(|closed| InferenceError::TaskFailed(closed.to_string()))?;
    tokio::task::spawn_blocking(move || {
        // The slot is held until the burn ends, even if the client gave up meanwhile:
        // the CPU is spent either way.
        let _slot = slot;
        simulate_cost(&model, &samples, cost);
        predict_all(&model, &samples)
    })
    .await
    .map_err(|join| InferenceError::TaskFailed(join.to_string()))
}

/// Allocates and touches the request's memory cost (on the blocking pool: writing tens
/// of MiB takes milliseconds, which would stall every connection of the async worker),
/// then keeps it for the configured hold time, asleep.
async fn hold_memory(state: &AppState) -> Result<Option<Ballast>, InferenceError> {
    let bytes = state.memory_cost_bytes();
    if bytes == 0 {
        return Ok(None);
    }
    let budget = state.memory_budget().clone();
    let ballast = tokio::task::spawn_blocking(move || budget.hold(bytes))
        .await
        .map_err(|join| InferenceError::TaskFailed(join.to_string()))?;
    // Under sustained overload every request is refused: warn on the 1st, 2nd, 4th,
    // 8th... refusal, so the log says it keeps happening without drowning the rest.
    let refused = state.memory_budget().refused();
    if ballast.is_none() && refused.is_power_of_two() {
        tracing::warn!(
            bytes,
            held = state.memory_budget().held(),
            limit = memory::MAX_HELD_BYTES,
            refused,
            "simulated model memory skipped: in-flight requests already hold the most allowed"
        );
    }
    let hold = state.memory_hold();
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    Ok(ballast)
}

fn predict_all(model: &IrisModel, samples: &[Measurements]) -> Vec<Prediction> {
    samples.iter().map(|sample| model.predict(sample)).collect()
}

/// Re-evaluates the tree on slightly perturbed copies of the first sample until the
/// thread has spent `cost` of CPU time: the same kind of work as the real prediction.
fn simulate_cost(model: &Arc<IrisModel>, samples: &[Measurements], cost: std::time::Duration) {
    let base = samples.first().map_or([5.0; 4], Measurements::as_array);
    let report = cost::burn(cost, |unit| {
        let mut x = base;
        x[(unit % 4) as usize] += (unit % 97) as f64 * 0.05;
        let prediction = model.predict(&Measurements::from_array(x));
        prediction.species.index() as u64 + prediction.confidence.to_bits()
    });
    if !report.completed {
        tracing::warn!(
            cpu_ms = report.cpu.as_secs_f64() * 1e3,
            wall_ms = report.wall.as_secs_f64() * 1e3,
            "simulated model cost cut short by its wall-clock budget"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Config;
    use crate::dataset::Species;

    fn setosa() -> Measurements {
        Measurements::from_array([5.1, 3.5, 1.4, 0.2])
    }

    #[tokio::test]
    async fn without_a_model_there_is_no_prediction() {
        let state = AppState::new(&Config::default());
        let result = classify(&state, vec![setosa()]).await;
        assert!(matches!(result, Err(InferenceError::NotReady)));
    }

    #[tokio::test]
    async fn with_a_cost_predictions_are_still_correct() {
        let config = Config {
            cpu_cost: Duration::from_millis(5),
            ..Config::default()
        };
        let state = AppState::with_model(&config, IrisModel::train_embedded().unwrap());
        let predictions = classify(&state, vec![setosa(), setosa()]).await.unwrap();
        assert_eq!(predictions.len(), 2);
        assert!(predictions.iter().all(|p| p.species == Species::Setosa));
    }

    #[tokio::test]
    async fn memory_is_held_for_the_request_and_given_back() {
        let config = Config {
            // Small: the RSS checks of `memory::tests` run alongside.
            memory_cost_bytes: 1 << 20,
            memory_hold: Duration::from_millis(300),
            ..Config::default()
        };
        let state = AppState::with_model(&config, IrisModel::train_embedded().unwrap());
        let request = tokio::spawn({
            let state = state.clone();
            async move { classify(&state, vec![setosa()]).await }
        });
        // Bounded wait for the request to hold its memory (it sleeps 300 ms holding it).
        let mut seen = 0;
        for _ in 0..100 {
            seen = state.memory_budget().held();
            if seen > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(seen, 1 << 20);
        let predictions = request.await.unwrap().unwrap();
        assert_eq!(predictions[0].species, Species::Setosa);
        assert_eq!(state.memory_budget().held(), 0);
    }
}
