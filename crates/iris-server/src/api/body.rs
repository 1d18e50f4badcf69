//! Reading a JSON request body with the checks FastAPI clients expect, each failure
//! answered as an [`ApiError`] instead of axum's plain-text rejections.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{FromRequest, Request};
use http::{StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use super::error::ApiError;

/// Largest accepted body of `POST /predict`.
pub const SINGLE_BODY_LIMIT: usize = 64 * 1024;

/// Largest accepted body of `POST /predict/batch`: room for the largest allowed batch
/// (1000 samples at about 90 bytes each as Python's `json.dumps` writes them), so the
/// sample-count limit, not the byte limit, is what a well-formed batch meets.
pub const BATCH_BODY_LIMIT: usize = 128 * 1024;

/// A request body that was declared as JSON, fits in `LIMIT` bytes and parses.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonBody<const LIMIT: usize>(pub Value);

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for JsonBody<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        check_content_type(request.headers())?;
        let bytes = read_limited(request.into_body(), LIMIT).await?;
        parse(&bytes).map(JsonBody)
    }
}

fn check_content_type(headers: &http::HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let mime = declared
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json =
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"));
    if is_json {
        return Ok(());
    }
    let found = if declared.is_empty() {
        "none".to_owned()
    } else {
        format!("{declared:?}")
    };
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("Content-Type must be application/json, found {found}"),
    ))
}

async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    // Refuse early when the declared length already says too much.
    if body
        .size_hint()
        .exact()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(error) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("could not read the request body: {error}"),
        )),
    }
}

/// Parses JSON. Python's `json.dumps` writes non-finite floats as the bare tokens `NaN`,
/// `Infinity` and `-Infinity`, which strict JSON (and serde_json) refuses; so that such
/// a body still gets an error naming the field, a body that fails to parse is retried
/// with those tokens turned into strings, which validation then reports as non-finite.
fn parse(bytes: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(error) => {
            let quoted = quote_non_finite_tokens(bytes);
            match quoted.as_deref().map(serde_json::from_slice::<Value>) {
                Some(Ok(value)) => Ok(value),
                _ => Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("request body is not valid JSON: {error}"),
                )),
            }
        }
    }
}

/// The non-finite number tokens Python emits, longest first so `-Infinity` wins over
/// `Infinity`.
const NON_FINITE_TOKENS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];

/// Copies `bytes`, wrapping bare `NaN`/`Infinity`/`-Infinity` tokens (outside strings)
/// in quotes; `None` if there were none.
fn quote_non_finite_tokens(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut found = false;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if let Some(token) = NON_FINITE_TOKENS
            .iter()
            .find(|token| bytes[index..].starts_with(token))
        {
            out.push(b'"');
            out.extend_from_slice(token);
            out.push(b'"');
            index += token.len();
            found = true;
            continue;
        }
        out.push(byte);
        index += 1;
    }
    found.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_tokens_become_strings_outside_strings_only() {
        let quoted =
            quote_non_finite_tokens(br#"{"a": NaN, "b": -Infinity, "c": "NaN \" Infinity"}"#);
        assert_eq!(
            String::from_utf8(quoted.unwrap()).unwrap(),
            r#"{"a": "NaN", "b": "-Infinity", "c": "NaN \" Infinity"}"#
        );
        assert_eq!(quote_non_finite_tokens(br#"{"a": 1}"#), None);
    }

    #[test]
    fn parse_reports_syntax_errors_as_422() {
        let error = parse(b"{\"a\": ").unwrap_err();
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            error.detail().contains("not valid JSON"),
            "{}",
            error.detail()
        );
        assert_eq!(parse(b"{\"a\": NaN}").unwrap()["a"], "NaN");
    }

    #[test]
    fn content_types_are_checked_by_media_type() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(
            check_content_type(&headers).unwrap_err().status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        for accepted in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.api+json",
        ] {
            headers.insert(header::CONTENT_TYPE, accepted.parse().unwrap());
            assert!(check_content_type(&headers).is_ok(), "{accepted}");
        }
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        let error = check_content_type(&headers).unwrap_err();
        assert!(error.detail().contains("text/plain"), "{}", error.detail());
    }
}
