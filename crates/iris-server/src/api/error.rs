//! Error responses in FastAPI's convention: a JSON object with a `detail` string naming
//! the problem and, for bad input, a `field` naming where it is.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

use crate::inference::InferenceError;

/// An error answer: status code, `detail` and optional `field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
    field: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// An error without a field.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
            field: None,
        }
    }

    /// A 422 for a value that fails validation, naming the field.
    pub fn invalid_field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: detail.into(),
            field: Some(field.into()),
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The problem, in words.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The offending field, if the problem is in one.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            detail: &self.detail,
            field: self.field.as_deref(),
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<InferenceError> for ApiError {
    fn from(error: InferenceError) -> Self {
        match error {
            InferenceError::NotReady => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "model is not trained yet")
            }
            InferenceError::TaskFailed(reason) => {
                tracing::error!(%reason, "prediction task failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "prediction failed")
            }
        }
    }
}
