//! One function per route.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::Serialize;

use super::body::{BATCH_BODY_LIMIT, JsonBody, SINGLE_BODY_LIMIT};
use super::error::ApiError;
use super::validate;
use crate::inference;
use crate::model::{ModelInfo, Prediction};
use crate::state::{AppState, Readiness};

/// `GET /` body.
#[derive(Debug, Serialize)]
pub struct ServiceInfo {
    /// Service name.
    pub name: &'static str,
    /// A greeting naming the API, as the original app's root route returned.
    pub message: &'static str,
    /// Crate version.
    pub version: &'static str,
    /// Whether predictions can be served.
    pub model_loaded: bool,
}

pub(super) async fn root(State(state): State<AppState>) -> Json<ServiceInfo> {
    Json(ServiceInfo {
        name: env!("CARGO_PKG_NAME"),
        message: "Iris classifier API",
        version: env!("CARGO_PKG_VERSION"),
        model_loaded: state.model().is_some(),
    })
}

/// `GET /health` and `GET /ready` body.
#[derive(Debug, Serialize)]
pub struct ProbeStatus {
    /// `healthy`, `ready`, `starting` or `draining`.
    pub status: &'static str,
    /// Why the server is not ready (absent when it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
}

/// Liveness: the process is up and the runtime answers.
pub(super) async fn health() -> Json<ProbeStatus> {
    Json(ProbeStatus {
        status: "healthy",
        detail: None,
    })
}

/// Readiness: 200 only between "model trained" and "shutdown signal received".
pub(super) async fn ready(State(state): State<AppState>) -> Response {
    let (status, body) = match state.readiness() {
        Readiness::Ready => (
            StatusCode::OK,
            ProbeStatus {
                status: "ready",
                detail: None,
            },
        ),
        Readiness::Starting => (
            StatusCode::SERVICE_UNAVAILABLE,
            ProbeStatus {
                status: "starting",
                detail: Some("model is not trained yet"),
            },
        ),
        Readiness::Draining => (
            StatusCode::SERVICE_UNAVAILABLE,
            ProbeStatus {
                status: "draining",
                detail: Some("server is shutting down"),
            },
        ),
    };
    (status, Json(body)).into_response()
}

pub(super) async fn predict(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SINGLE_BODY_LIMIT>,
) -> Result<Json<Prediction>, ApiError> {
    let sample = validate::single(&body)?;
    let mut predictions = inference::classify(&state, vec![sample]).await?;
    let prediction = predictions.pop().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the model returned no prediction",
        )
    })?;
    Ok(Json(prediction))
}

/// `POST /predict/batch` body.
#[derive(Debug, Serialize)]
pub struct BatchPredictions {
    /// One prediction per sample, in request order.
    pub predictions: Vec<Prediction>,
}

pub(super) async fn predict_batch(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<BATCH_BODY_LIMIT>,
) -> Result<Json<BatchPredictions>, ApiError> {
    let samples = validate::batch(&body)?;
    let predictions = inference::classify(&state, samples).await?;
    Ok(Json(BatchPredictions { predictions }))
}

pub(super) async fn model_info(State(state): State<AppState>) -> Result<Json<ModelInfo>, ApiError> {
    let model = state.model().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "model is not trained yet")
    })?;
    Ok(Json(model.info()))
}

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )
        .into_response()
}

pub(super) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not Found")
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}
