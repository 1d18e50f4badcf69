//! Faults the API server plays on purpose: a matching request of the harness is
//! answered with an error instead of being served, as a throttled or failing API
//! server answers it. The simulated controllers read the store directly and are not
//! affected; only what a client sees over HTTP is.
//!
//! The answers are the real server's: 429 is kube-apiserver's max-in-flight and
//! priority-and-fairness answer (apiserver `pkg/server/filters/maxinflight.go`,
//! `tooManyRequests`: a `Retry-After` header and a plain-text body, not a `Status`);
//! 500 is `NewInternalError` (apimachinery `pkg/api/errors/errors.go`: reason
//! `InternalError`, "Internal error occurred: ...", the error as a cause); 503 is
//! `NewServiceUnavailable` (reason `ServiceUnavailable`), what an aggregated API that
//! is down gets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::resource::Resource;

/// Statuses a fault can answer with.
pub const STATUSES: [u16; 3] = [429, 500, 503];

/// One fault: which requests it answers and with what. `[[backend.local.faults]]`
/// in the stress config, or [`crate::SimCluster::inject`] in tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiFault {
    /// `get`, `list`, `watch`, `patch`, `delete` (default: every verb).
    #[serde(default)]
    pub verb: Option<String>,
    /// The resource as in a URL: `deployments`, `pods`, `horizontalpodautoscalers`,
    /// `services`, `namespaces`, `events`, `apiservices`, or `podmetrics` (default:
    /// every resource).
    #[serde(default)]
    pub resource: Option<String>,
    /// 429, 500 or 503; without it the request is served, late (`delay_ms`).
    #[serde(default)]
    pub status: Option<u16>,
    /// Answer only after this many milliseconds, as an overloaded API server or a
    /// congested link does: the harness's client gives up on a request after
    /// its timeout and tries again.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// 429's `Retry-After` in seconds (the API server sends 1).
    #[serde(default)]
    pub retry_after_s: Option<u64>,
    /// How many matching requests it answers; then it is spent (default: all, for
    /// the whole run: a permanent fault).
    #[serde(default)]
    pub times: Option<u32>,
}

const VERBS: [&str; 5] = ["get", "list", "watch", "patch", "delete"];

impl ApiFault {
    /// Whether the fault can be played; the message names the field and what it takes.
    pub fn check(&self) -> Result<(), String> {
        match self.status {
            None if self.delay_ms.is_none() => {
                return Err("a fault needs a status (429, 500 or 503), a delay_ms, or both".into());
            }
            Some(status) if !STATUSES.contains(&status) => {
                return Err(format!(
                    "status = {status}: a fault answers 429, 500 or 503"
                ));
            }
            _ => {}
        }
        if let Some(verb) = &self.verb
            && !VERBS.contains(&verb.as_str())
        {
            return Err(format!("verb = {verb:?}: one of {}", VERBS.join(", ")));
        }
        if let Some(name) = &self.resource
            && resource_named(name).is_none()
        {
            let known: Vec<&str> = Resource::ALL.iter().map(|r| url_name(*r)).collect();
            return Err(format!("resource = {name:?}: one of {}", known.join(", ")));
        }
        if self.retry_after_s.is_some() && self.status != Some(429) {
            return Err("retry_after_s: only a 429 carries Retry-After".into());
        }
        Ok(())
    }

    fn matches(&self, verb: &str, resource: Resource) -> bool {
        self.verb.as_deref().is_none_or(|v| v == verb)
            && self
                .resource
                .as_deref()
                .is_none_or(|name| resource_named(name) == Some(resource))
    }

    /// The error answer, when the fault has a status.
    pub fn answer(&self, target_name: &str) -> Option<Response> {
        let status = self.status?;
        Some(match status {
            429 => {
                let after = self.retry_after_s.unwrap_or(1).to_string();
                Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header(header::RETRY_AFTER, after)
                    .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .header("X-Content-Type-Options", "nosniff")
                    .body(Body::from("Too many requests, please try again later.\n"))
                    .unwrap_or_else(|_| Response::new(Body::empty()))
            }
            500 => {
                let cause = format!("injected fault: storage unavailable for {target_name}");
                status_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure",
                        "message": format!("Internal error occurred: {cause}"),
                        "reason": "InternalError",
                        "details": { "causes": [ { "message": cause } ] },
                        "code": 500,
                    }),
                )
            }
            _ => status_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure",
                    "message": "service unavailable (injected fault)",
                    "reason": "ServiceUnavailable",
                    "code": 503,
                }),
            ),
        })
    }

    /// How long to hold the request before answering (or serving) it.
    pub fn delay(&self) -> Option<std::time::Duration> {
        self.delay_ms.map(std::time::Duration::from_millis)
    }
}

fn status_response(code: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap_or_default()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// The name a fault uses for `resource`: its URL plural, but `podmetrics` for the
/// metrics API's pods.
pub fn url_name(resource: Resource) -> &'static str {
    match resource {
        Resource::PodMetrics => "podmetrics",
        other => other.plural(),
    }
}

fn resource_named(name: &str) -> Option<Resource> {
    Resource::ALL.into_iter().find(|r| url_name(*r) == name)
}

/// The faults in play, and how many requests they answered.
#[derive(Debug, Default)]
pub struct Faults {
    active: Mutex<Vec<ApiFault>>,
    played: AtomicU64,
}

impl Faults {
    pub fn add(&self, fault: ApiFault) {
        self.lock().push(fault);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Requests answered by a fault so far.
    pub fn played(&self) -> u64 {
        self.played.load(Ordering::Relaxed)
    }

    /// The first fault matching the request, spending one of its `times`; `None`
    /// when the request is to be served as usual.
    pub fn take(&self, verb: &str, resource: Resource) -> Option<ApiFault> {
        let mut active = self.lock();
        let index = active.iter().position(|f| f.matches(verb, resource))?;
        let fault = active[index].clone();
        match &mut active[index].times {
            Some(1) => {
                active.remove(index);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        drop(active);
        self.played.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("fault: {verb} {} met {fault:?}", url_name(resource));
        Some(fault)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ApiFault>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(status: u16) -> ApiFault {
        ApiFault {
            verb: Some("patch".into()),
            resource: Some("deployments".into()),
            status: Some(status),
            delay_ms: None,
            retry_after_s: None,
            times: Some(2),
        }
    }

    fn answered(faults: &Faults, verb: &str, resource: Resource) -> Option<Response> {
        faults.take(verb, resource).and_then(|f| f.answer("x"))
    }

    #[test]
    fn a_counted_fault_answers_its_matches_and_is_then_spent() {
        let faults = Faults::default();
        faults.add(fault(503));
        assert!(
            answered(&faults, "get", Resource::Deployment).is_none(),
            "other verb"
        );
        assert!(
            answered(&faults, "patch", Resource::Service).is_none(),
            "other resource"
        );
        for _ in 0..2 {
            let answer = answered(&faults, "patch", Resource::Deployment).expect("faulted");
            assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        assert!(
            answered(&faults, "patch", Resource::Deployment).is_none(),
            "spent"
        );
        assert_eq!(faults.played(), 2);
    }

    #[test]
    fn a_429_carries_retry_after_and_the_api_servers_plain_text() {
        let faults = Faults::default();
        faults.add(ApiFault {
            retry_after_s: Some(2),
            ..fault(429)
        });
        let answer = answered(&faults, "patch", Resource::Deployment).expect("faulted");
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn bad_faults_are_refused_naming_the_field() {
        let cases = [
            (
                ApiFault {
                    status: Some(404),
                    ..fault(500)
                },
                "status = 404",
            ),
            (
                ApiFault {
                    verb: Some("post".into()),
                    ..fault(500)
                },
                "verb = \"post\"",
            ),
            (
                ApiFault {
                    resource: Some("deployment".into()),
                    ..fault(500)
                },
                "resource = \"deployment\"",
            ),
            (
                ApiFault {
                    retry_after_s: Some(1),
                    ..fault(500)
                },
                "retry_after_s",
            ),
        ];
        for (bad, named) in cases {
            let err = bad.check().expect_err("refused");
            assert!(err.contains(named), "{err}");
        }
        assert_eq!(fault(429).check(), Ok(()));
        let neither = ApiFault {
            status: None,
            ..fault(500)
        };
        assert!(neither.check().expect_err("refused").contains("delay_ms"));
        let late = ApiFault {
            status: None,
            delay_ms: Some(20_000),
            ..fault(500)
        };
        assert_eq!(late.check(), Ok(()));
        assert!(late.answer("x").is_none(), "served, late");
        assert_eq!(resource_named("podmetrics"), Some(Resource::PodMetrics));
        assert_eq!(resource_named("pods"), Some(Resource::Pod));
    }
}
