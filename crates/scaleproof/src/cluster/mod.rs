//! The kind / cluster backend: everything scaleproof asks of a real Kubernetes API.
//!
//! Each submodule does one job against a [`kube::Client`] and is tested against a
//! mocked API server (see `crates/scaleproof/tests/cluster_api/`):
//!
//! - [`objects`]: the objects to apply, derived from [`crate::manifests::Manifests`]
//!   (image override, namespace, HPA overrides), pure and printable for dry runs;
//! - [`apply`]: the dedicated namespace (Pod Security `restricted`) and server-side
//!   apply of the Deployment, Service and HPA;
//! - [`rollout`]: waiting for a Deployment, and explaining why it is not ready;
//! - [`reset`]: putting the workload back to one pod and a fresh HPA between scenarios;
//! - [`capacity`]: the nodes' allocatable CPU and what pods requested of it (lanes);
//! - [`fresh`]: a namespace of its own per scenario instead (applied, ready, idle),
//!   and its deletion;
//! - [`metrics_server`]: configuring metrics-server for kind and waiting until the
//!   metrics API serves the app's pods;
//! - [`control_plane`]: checking the controller-manager runs with our HPA sync period;
//! - [`observer`]: sampling the HPA and PodMetrics into a [`crate::timeline::Timeline`];
//! - [`diagnostics`]: the bundle of files written when anything fails.

pub mod apply;
pub mod capacity;
pub mod control_plane;
pub mod diagnostics;
pub mod evidence;
pub mod fresh;
pub mod metrics_server;
pub mod objects;
pub mod observer;
pub mod reset;
pub mod retry;
pub mod rollout;

use std::time::Duration;

use kube::api::PatchParams;

pub use crate::manifests::HpaOverrides;
pub use objects::{Prepared, Target};
pub use rollout::{RolloutDiagnosis, RolloutFailure};

/// The field manager of every server-side apply scaleproof makes.
pub const FIELD_MANAGER: &str = "scaleproof";

/// Server-side apply parameters: our field manager, forcing ownership so that a
/// previous `kubectl apply` (another manager) cannot make the apply fail on conflicts.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A request to the API server failed.
    #[error("{what}: {}", describe_kube_error(source))]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// A watch used for waiting failed.
    #[error("{what}: {}", describe_watch_error(source))]
    Watch {
        what: String,
        #[source]
        source: kube::runtime::watcher::Error,
    },
    /// The Deployment did not become ready in time; the diagnosis says why.
    #[error(transparent)]
    Rollout(Box<RolloutFailure>),
    /// Something did not happen within its time limit.
    #[error("{what}: not done after {}s; last seen: {last_seen}", after.as_secs_f64())]
    Timeout {
        what: String,
        after: Duration,
        last_seen: String,
    },
    /// The manifests or the cluster state lack something scaleproof needs.
    #[error("{0}")]
    Invalid(String),
    /// A manifest (or a scenario's override of it) is not usable.
    #[error(transparent)]
    Manifest(#[from] crate::manifests::ManifestError),
}

impl ClusterError {
    /// A closure turning a [`kube::Error`] into [`ClusterError::Kube`] naming `what`
    /// was being done (`"apply Deployment iris-classifier"`).
    pub(crate) fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| ClusterError::Kube { what, source }
    }
}

/// A readable one-line account of a kube error: the API's status code, reason and
/// message (kube's own Display repeats the Debug form), with a hint for the two
/// statuses users meet most, and for a "not now" status that outlasted
/// [`retry`]'s bounds.
pub fn describe_kube_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let transient = http::StatusCode::from_u16(status.code).is_ok_and(retry::is_transient);
            let hint = match status.code {
                _ if transient => retry::exhausted_hint(),
                401 => {
                    " (the kubeconfig's credentials were rejected: log in again or pick another --context)".into()
                }
                403 => {
                    " (the kubeconfig's user lacks RBAC permission for this; use a context with rights on the namespace)".into()
                }
                404 => " (not found: is the API or object there?)".into(),
                _ => String::new(),
            };
            format!(
                "API server answered {} {}: {}{hint}",
                status.code, status.reason, status.message
            )
        }
        other => other.to_string(),
    }
}

/// [`describe_kube_error`] for a read of the metrics API, which is polled rather than
/// retried ([`retry::is_polled`]): its 503 is the aggregator saying metrics-server is
/// unavailable, not a status that outlasted retries.
pub fn describe_metrics_api_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let hint = if status.code == 503 {
                " (the aggregator cannot reach metrics-server: it is down, restarting or not ready)"
            } else {
                ""
            };
            format!(
                "API server answered {} {}: {}{hint}",
                status.code, status.reason, status.message
            )
        }
        other => describe_kube_error(other),
    }
}

/// A readable account of a watcher error, unwrapping the API status inside.
pub fn describe_watch_error(error: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as W;
    match error {
        W::InitialListFailed(e) => format!("listing failed: {}", describe_kube_error(e)),
        W::WatchStartFailed(e) => format!("starting the watch failed: {}", describe_kube_error(e)),
        W::WatchFailed(e) => format!("the watch failed: {}", describe_kube_error(e)),
        other => other.to_string(),
    }
}

/// How the harness reaches a Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "via", rename_all = "snake_case", deny_unknown_fields)]
pub enum KubeAccess {
    /// A kubeconfig context (`None`: the current one), from `$KUBECONFIG` or
    /// `~/.kube/config`: kind and existing clusters.
    Kubeconfig { context: Option<String> },
    /// A plain-HTTP API on loopback, without credentials: the local backend's
    /// simulated control plane.
    Url { url: String },
}

/// A client for `access`. The only place the harness connects to a cluster.
pub async fn connect(access: &KubeAccess) -> Result<kube::Client, ClusterError> {
    let (config, what) = match access {
        KubeAccess::Kubeconfig { context } => {
            let what = context
                .as_deref()
                .map_or("the current context".to_string(), |c| {
                    format!("context {c}")
                });
            let options = kube::config::KubeConfigOptions {
                context: context.clone(),
                ..Default::default()
            };
            let config = kube::Config::from_kubeconfig(&options).await.map_err(|e| {
                ClusterError::Invalid(format!("kubeconfig has no usable {what}: {e}"))
            })?;
            (config, what)
        }
        KubeAccess::Url { url } => {
            let uri = url
                .parse()
                .map_err(|e| ClusterError::Invalid(format!("API URL {url}: {e}")))?;
            let mut config = kube::Config::new(uri);
            config.default_namespace = "default".into();
            (config, format!("the API at {url}"))
        }
    };
    // Our bounded retries instead of kube's (see `retry`): the inner client sends once.
    let mut config = config;
    config.default_retry = false;
    let namespace = config.default_namespace.clone();
    let inner = kube::Client::try_from(config)
        .map_err(ClusterError::kube(format!("build a client for {what}")))?;
    let service = tower::ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(retry::BoundedRetry::default()))
        .service(tower::service_fn(
            move |request: http::Request<kube::client::Body>| {
                let inner = inner.clone();
                // Long-running requests (watches, followed logs) end when the server or
                // the caller ends them; every other one gets an answer in time or is
                // retried (`retry`), instead of waiting kube's 295 s read timeout.
                let bound =
                    (!retry::is_long_running(request.uri())).then_some(retry::REQUEST_TIMEOUT);
                async move {
                    match bound {
                        None => inner.send(request).await,
                        Some(bound) => tokio::time::timeout(bound, inner.send(request))
                            .await
                            .unwrap_or_else(|_| {
                                Err(kube::Error::Service(Box::new(retry::NoAnswer {
                                    after: bound,
                                })))
                            }),
                    }
                }
            },
        ));
    Ok(kube::Client::new(service, namespace))
}

/// Whether `error` is the API server's 404 Not Found.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}
