//! The HTTP API: routes, request parsing and validation, error bodies, request metrics.

mod body;
mod error;
mod handlers;
mod validate;

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

pub use body::{BATCH_BODY_LIMIT, SINGLE_BODY_LIMIT};
pub use error::ApiError;
pub use handlers::{BatchPredictions, ProbeStatus, ServiceInfo};
pub use validate::{MAX_BATCH, MAX_CM};

use crate::metrics::UNMATCHED_ROUTE;
use crate::state::AppState;

/// The service's routes, with metrics recorded for every request (including 404s).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(handlers::root))
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/predict", post(handlers::predict))
        .route("/predict/batch", post(handlers::predict_batch))
        .route("/model/info", get(handlers::model_info))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Counts the request as in flight while it runs, then records route, status and time.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let _in_flight = state.metrics().request_started();
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    state
        .metrics()
        .record(route, &method, response.status(), started.elapsed());
    response
}
