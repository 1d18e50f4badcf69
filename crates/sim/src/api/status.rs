//! Errors as the real API server writes them: `Status` objects with its codes,
//! reasons, message formats and details, so the harness's error handling meets what
//! it would meet on a cluster. Shapes from kubernetes/apimachinery
//! `pkg/api/errors/errors.go` and `pkg/apis/meta/v1/types.go` (`Status`): `metadata`
//! is always `{}`, the HTTP code equals `code`, `details.kind` is the plural resource
//! except for Invalid (the Kind), names are double-quoted.

use serde_json::{Map, Value, json};

use super::resource::Resource;

/// An error response: its HTTP code and its `Status` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub body: Value,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.code,
            self.body["message"].as_str().unwrap_or("")
        )
    }
}

fn status(code: u16, reason: Option<&str>, message: String, details: Option<Value>) -> ApiError {
    let mut body = Map::new();
    body.insert("kind".into(), json!("Status"));
    body.insert("apiVersion".into(), json!("v1"));
    body.insert("metadata".into(), json!({}));
    body.insert("status".into(), json!("Failure"));
    body.insert("message".into(), json!(message));
    if let Some(reason) = reason {
        body.insert("reason".into(), json!(reason));
    }
    if let Some(details) = details {
        body.insert("details".into(), details);
    }
    body.insert("code".into(), json!(code));
    ApiError {
        code,
        body: Value::Object(body),
    }
}

/// `{name, group, kind}` with the group left out for the core group.
fn details(resource: Resource, name: &str, kind: &str) -> Value {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !resource.group().is_empty() {
        d.insert("group".into(), json!(resource.group()));
    }
    d.insert("kind".into(), json!(kind));
    Value::Object(d)
}

/// 404 `deployments.apps "x" not found` (`NewNotFound`).
pub fn not_found(resource: Resource, name: &str) -> ApiError {
    let kind = match resource {
        Resource::PodMetrics => "podmetrics",
        other => other.plural(),
    };
    status(
        404,
        Some("NotFound"),
        format!("{} {name:?} not found", resource.group_resource()),
        Some(details(resource, name, kind)),
    )
}

/// 404 for a path the server does not serve.
pub fn unknown_path() -> ApiError {
    status(
        404,
        Some("NotFound"),
        "the server could not find the requested resource".into(),
        Some(json!({})),
    )
}

/// 409 `Operation cannot be fulfilled on ...` (`NewConflict`).
pub fn conflict(resource: Resource, name: &str, why: &str) -> ApiError {
    status(
        409,
        Some("Conflict"),
        format!(
            "Operation cannot be fulfilled on {} {name:?}: {why}",
            resource.group_resource()
        ),
        Some(details(resource, name, resource.plural())),
    )
}

/// 409 of a server-side apply that would take fields another manager owns
/// (`NewApplyConflict`, message from managedfields `conflict.go`): details carry only
/// the causes.
pub fn apply_conflict(conflicts: &[(String, String)]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(manager, field)| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": field})
        })
        .collect();
    let message = match conflicts {
        [(manager, field)] => {
            format!("Apply failed with 1 conflict: conflict with {manager}: {field}")
        }
        many => {
            let mut by_manager: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
            for (manager, field) in many {
                by_manager.entry(manager).or_default().push(field);
            }
            let mut text = format!("Apply failed with {} conflicts: ", many.len());
            for (i, (manager, fields)) in by_manager.into_iter().enumerate() {
                if i > 0 {
                    text.push('\n');
                }
                text.push_str(&format!("conflicts with {manager}:"));
                for field in fields {
                    text.push_str(&format!("\n- {field}"));
                }
            }
            text
        }
    };
    status(
        409,
        Some("Conflict"),
        message,
        Some(json!({ "causes": causes })),
    )
}

/// 403, as the authorizer writes it for a namespaced request
/// (`apiserver pkg/endpoints/handlers/responsewriters/errors.go`).
pub fn forbidden(
    resource: Resource,
    name: &str,
    user: &str,
    verb: &str,
    namespace: &str,
) -> ApiError {
    let group = resource.group();
    let scope = if namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {namespace:?}")
    };
    let subject = if name.is_empty() {
        format!("{} is forbidden", resource.group_resource())
    } else {
        format!("{} {name:?} is forbidden", resource.group_resource())
    };
    status(
        403,
        Some("Forbidden"),
        format!(
            "{subject}: User {user:?} cannot {verb} resource {:?} in API group {group:?} {scope}",
            resource.plural()
        ),
        Some(details(resource, name, resource.plural())),
    )
}

/// One field error of an Invalid (`field.Error`: reason, body, field path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// `Invalid value: 0: must be greater than 0`
    pub body: String,
    /// `spec.maxReplicas`
    pub field: String,
}

impl FieldError {
    /// `Invalid value: <value>: <detail>` (ints bare, strings quoted, as Go prints them).
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        FieldError {
            reason: "FieldValueInvalid",
            body: format!("Invalid value: {shown}: {detail}"),
            field: field.into(),
        }
    }

    pub fn required(field: &str, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueRequired",
            body: format!("Required value: {detail}"),
            field: field.into(),
        }
    }
}

/// 422 `Kind.group "name" is invalid: field: body` (`NewInvalid`, several errors as
/// `[a, b]`).
pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> ApiError {
    let each: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.body))
        .collect();
    let aggregate = match each.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    d.insert("kind".into(), json!(kind));
    d.insert(
        "causes".into(),
        Value::Array(
            errors
                .iter()
                .map(|e| json!({"reason": e.reason, "message": e.body, "field": e.field}))
                .collect(),
        ),
    );
    status(
        422,
        Some("Invalid"),
        format!("{qualified} {name:?} is invalid: {aggregate}"),
        Some(Value::Object(d)),
    )
}

/// 400 with a free-text message (`NewBadRequest`).
pub fn bad_request(message: impl Into<String>) -> ApiError {
    status(400, Some("BadRequest"), message.into(), None)
}

/// 405 `... is not supported on resources of kind ...` (`NewMethodNotSupported`).
pub fn method_not_supported(resource: Resource, action: &str) -> ApiError {
    let mut d = Map::new();
    if !resource.group().is_empty() {
        d.insert("group".into(), json!(resource.group()));
    }
    d.insert("kind".into(), json!(resource.plural()));
    status(
        405,
        Some("MethodNotAllowed"),
        format!(
            "{action} is not supported on resources of kind {:?}",
            resource.group_resource()
        ),
        Some(Value::Object(d)),
    )
}

/// 415 for a body in a format the server does not take.
pub fn unsupported_media_type(accepted: &[&str]) -> ApiError {
    status(
        415,
        Some("UnsupportedMediaType"),
        format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        ),
        None,
    )
}

/// 500 without a reason: what a plain (non-Status) error becomes in the API server
/// (`ErrorToAPIStatus`), e.g. server-side apply's typing error.
pub fn internal(message: impl Into<String>) -> ApiError {
    status(500, None, message.into(), None)
}

/// apimachinery's `NewServiceUnavailable("service unavailable")`, what kube-aggregator
/// answers for an APIService that is not available.
pub fn service_unavailable() -> ApiError {
    status(
        503,
        Some("ServiceUnavailable"),
        "service unavailable".into(),
        None,
    )
}

/// The `Status` of a watch that starts too far back (`NewResourceExpired`): sent as
/// one ERROR event, code 410, reason `Expired`.
pub fn expired(requested: u64, oldest: u64) -> Value {
    status(
        410,
        Some("Expired"),
        format!(
            "too old resource version: {requested} ({})",
            oldest.saturating_sub(1)
        ),
        None,
    )
    .body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_the_api_servers_own_status() {
        assert_eq!(
            not_found(Resource::Deployment, "x").body,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"deployments.apps \"x\" not found","reason":"NotFound",
                   "details":{"name":"x","group":"apps","kind":"deployments"},"code":404})
        );
        assert_eq!(
            not_found(Resource::Pod, "p").body["details"],
            json!({"name":"p","kind":"pods"}),
            "no group for the core group"
        );
    }

    #[test]
    fn invalid_aggregates_field_errors() {
        let errors = [
            FieldError::invalid("spec.maxReplicas", &json!(0), "must be greater than 0"),
            FieldError::invalid(
                "spec.maxReplicas",
                &json!(0),
                "must be greater than or equal to `minReplicas`",
            ),
        ];
        let e = invalid("autoscaling", "HorizontalPodAutoscaler", "x", &errors);
        assert_eq!(e.code, 422);
        assert_eq!(
            e.body["message"],
            "HorizontalPodAutoscaler.autoscaling \"x\" is invalid: [spec.maxReplicas: Invalid value: 0: must be greater than 0, spec.maxReplicas: Invalid value: 0: must be greater than or equal to `minReplicas`]"
        );
        assert_eq!(e.body["details"]["kind"], "HorizontalPodAutoscaler");
    }
}
