//! Turns request JSON into measurements, naming the first offending field on failure.
//!
//! Validation is hand-written over `serde_json::Value` rather than derived, because the
//! error body must name the exact field (`samples[3].petal_width`) and the problem in
//! words, which serde's derived errors only give as free text.

use serde_json::Value;

use super::error::ApiError;
use crate::dataset::{FEATURE_COUNT, FEATURE_NAMES, Measurements};

/// Largest plausible measurement, in cm (the largest Iris flower part is under 8 cm).
pub const MAX_CM: f64 = 100.0;

/// Most samples accepted in one `POST /predict/batch`.
pub const MAX_BATCH: usize = 1000;

/// The body of `POST /predict`: one flower's four measurements.
pub fn single(body: &Value) -> Result<Measurements, ApiError> {
    measurements(body, "")
}

/// The body of `POST /predict/batch`: `{"samples": [ {...}, ... ]}` with 1 to
/// [`MAX_BATCH`] samples.
pub fn batch(body: &Value) -> Result<Vec<Measurements>, ApiError> {
    let object = body.as_object().ok_or_else(|| {
        ApiError::invalid_field(
            "body",
            format!(
                "request body must be a JSON object with a \"samples\" array, got {}",
                kind(body)
            ),
        )
    })?;
    let samples = object
        .get("samples")
        .ok_or_else(|| ApiError::invalid_field("samples", "field required: samples"))?;
    let samples = samples.as_array().ok_or_else(|| {
        ApiError::invalid_field(
            "samples",
            format!("samples must be an array, got {}", kind(samples)),
        )
    })?;
    if samples.is_empty() {
        return Err(ApiError::invalid_field(
            "samples",
            "samples must contain at least 1 sample",
        ));
    }
    if samples.len() > MAX_BATCH {
        return Err(ApiError::invalid_field(
            "samples",
            format!(
                "samples must contain at most {MAX_BATCH} samples, got {}",
                samples.len()
            ),
        ));
    }
    samples
        .iter()
        .enumerate()
        .map(|(index, sample)| measurements(sample, &format!("samples[{index}].")))
        .collect()
}

/// One measurements object; `prefix` locates it in the body for error messages.
fn measurements(value: &Value, prefix: &str) -> Result<Measurements, ApiError> {
    let location = prefix.strip_suffix('.').unwrap_or("body");
    let object = value.as_object().ok_or_else(|| {
        ApiError::invalid_field(
            location,
            format!(
                "{location} must be a JSON object with fields {}, got {}",
                FEATURE_NAMES.join(", "),
                kind(value)
            ),
        )
    })?;
    let mut values = [0.0; FEATURE_COUNT];
    for (slot, name) in values.iter_mut().zip(FEATURE_NAMES) {
        let field = format!("{prefix}{name}");
        let raw = object
            .get(name)
            .ok_or_else(|| ApiError::invalid_field(&field, format!("field required: {field}")))?;
        *slot = centimetres(raw, &field)?;
    }
    Ok(Measurements::from_array(values))
}

fn centimetres(raw: &Value, field: &str) -> Result<f64, ApiError> {
    let value = match raw {
        Value::Number(number) => number.as_f64(),
        // Python clients send non-finite floats as bare tokens that the body reader
        // turns into these strings (see `body::parse`).
        Value::String(text) if matches!(text.as_str(), "NaN" | "Infinity" | "-Infinity") => {
            return Err(ApiError::invalid_field(
                field,
                format!("{field} must be a finite number, got {text}"),
            ));
        }
        _ => None,
    };
    let value = value.ok_or_else(|| {
        ApiError::invalid_field(
            field,
            format!("{field} must be a number (cm), got {}", kind(raw)),
        )
    })?;
    if !value.is_finite() {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} must be a finite number, got {value}"),
        ));
    }
    if value < 0.0 {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} must not be negative, got {value}"),
        ));
    }
    if value > MAX_CM {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} must be at most {MAX_CM} cm, got {value}"),
        ));
    }
    Ok(value)
}

/// A JSON value's type, in words for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn flower() -> Value {
        json!({"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2})
    }

    fn field_error(body: &Value) -> (String, String) {
        let error = single(body).unwrap_err();
        assert_eq!(error.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
        (error.field().unwrap().to_owned(), error.detail().to_owned())
    }

    #[test]
    fn a_valid_flower_parses_and_integers_count_as_numbers() {
        assert_eq!(single(&flower()).unwrap().petal_width, 0.2);
        let mut body = flower();
        body["sepal_length"] = json!(5);
        assert_eq!(single(&body).unwrap().sepal_length, 5.0);
        body["extra"] = json!("ignored, as pydantic does");
        assert!(single(&body).is_ok());
    }

    #[test]
    fn each_problem_names_its_field() {
        let mut missing = flower();
        missing.as_object_mut().unwrap().remove("sepal_width");
        assert_eq!(field_error(&missing).0, "sepal_width");

        let cases = [
            (json!("5.1"), "must be a number"),
            (json!(null), "must be a number"),
            (json!(true), "must be a number"),
            (json!("NaN"), "finite"),
            (json!(-0.1), "negative"),
            (json!(100.5), "at most 100"),
        ];
        for (value, expected) in cases {
            let mut body = flower();
            body["petal_length"] = value.clone();
            let (field, detail) = field_error(&body);
            assert_eq!(field, "petal_length", "{value}");
            assert!(detail.contains(expected), "{value}: {detail}");
        }
        let (field, _) = field_error(&json!([1, 2]));
        assert_eq!(field, "body");
    }

    #[test]
    fn boundaries_are_inclusive() {
        let mut body = flower();
        body["petal_width"] = json!(0.0);
        body["sepal_length"] = json!(100.0);
        assert!(single(&body).is_ok());
    }

    #[test]
    fn batch_limits_and_locations() {
        assert_eq!(
            batch(&json!({"samples": [flower(), flower()]}))
                .unwrap()
                .len(),
            2
        );
        let empty = batch(&json!({"samples": []})).unwrap_err();
        assert_eq!(empty.field(), Some("samples"));
        let many: Vec<Value> = (0..=MAX_BATCH).map(|_| flower()).collect();
        let too_many = batch(&json!({ "samples": many })).unwrap_err();
        assert!(
            too_many.detail().contains("at most 1000"),
            "{}",
            too_many.detail()
        );
        let mut bad = flower();
        bad["petal_width"] = json!(-1);
        let error = batch(&json!({"samples": [flower(), bad]})).unwrap_err();
        assert_eq!(error.field(), Some("samples[1].petal_width"));
        let error = batch(&json!({"samples": [flower(), 7]})).unwrap_err();
        assert_eq!(error.field(), Some("samples[1]"));
        assert_eq!(batch(&json!({})).unwrap_err().field(), Some("samples"));
        assert_eq!(
            batch(&json!({"samples": 3})).unwrap_err().field(),
            Some("samples")
        );
    }
}
