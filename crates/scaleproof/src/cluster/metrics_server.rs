//! metrics-server: configuring it for kind, and waiting until it serves our pods.
//!
//! The HPA cannot act before metrics-server answers for the app's pods: right after
//! install the APIService is unavailable, then the first scrapes are missing (CPU
//! needs two samples). Load sent before that is wasted, so the harness waits here.

use std::time::Duration;

use k8s_metrics::v1beta1::PodMetrics;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};

use super::{ClusterError, describe_kube_error};

/// Where the upstream `components.yaml` installs metrics-server.
pub const NAMESPACE: &str = "kube-system";
/// The Deployment of the upstream `components.yaml`.
pub const DEPLOYMENT: &str = "metrics-server";
/// The label selector of its pods.
pub const POD_SELECTOR: &str = "k8s-app=metrics-server";
/// The aggregated API metrics-server registers.
pub const API_SERVICE: &str = "v1beta1.metrics.k8s.io";

/// The flags kind needs: kind's kubelets serve self-signed certificates without IP
/// SANs (so TLS verification must be off), and the shortest resolution
/// metrics-server allows (10 s) lets the HPA react within one scenario.
pub const KIND_ARGS: [&str; 2] = ["--kubelet-insecure-tls", "--metric-resolution=10s"];

/// Sets [`KIND_ARGS`] on the metrics-server container with a JSON patch. Idempotent:
/// flags of the same name are replaced rather than repeated, and nothing is sent when
/// they are already there. The patch `test`s the args it read, so a concurrent change
/// makes it fail instead of being overwritten. Returns whether it patched.
pub async fn configure_for_kind(client: &Client) -> Result<bool, ClusterError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let what = format!("configure Deployment {NAMESPACE}/{DEPLOYMENT}");
    let deployment = api
        .get(DEPLOYMENT)
        .await
        .map_err(ClusterError::kube(&what))?;
    let container = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .ok_or_else(|| ClusterError::Invalid(format!("{what}: it has no container")))?;
    let current = container.args.clone().unwrap_or_default();
    let wanted = args_with(&current, &KIND_ARGS);
    if wanted == current {
        return Ok(false);
    }
    let path = "/spec/template/spec/containers/0/args";
    let ops = if container.args.is_some() {
        serde_json::json!([
            { "op": "test", "path": path, "value": current },
            { "op": "replace", "path": path, "value": wanted },
        ])
    } else {
        serde_json::json!([{ "op": "add", "path": path, "value": wanted }])
    };
    let patch = serde_json::from_value(ops)
        .map_err(|e| ClusterError::Invalid(format!("{what}: bad JSON patch: {e}")))?;
    api.patch(
        DEPLOYMENT,
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await
    .map_err(ClusterError::kube(&what))?;
    Ok(true)
}

/// `current` without any flag named in `ours` (whatever its value), then `ours`.
pub fn args_with(current: &[String], ours: &[&str]) -> Vec<String> {
    let flag_name = |arg: &str| arg.split('=').next().unwrap_or(arg).to_string();
    let replaced: Vec<String> = ours.iter().map(|a| flag_name(a)).collect();
    current
        .iter()
        .filter(|arg| !replaced.contains(&flag_name(arg)))
        .cloned()
        .chain(ours.iter().map(|a| a.to_string()))
        .collect()
}

/// How long to wait for metrics, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct MetricsWait {
    pub timeout: Duration,
    pub poll: Duration,
}

impl Default for MetricsWait {
    fn default() -> Self {
        // Typically 30-90 s after install on kind; allow for a slow CI runner.
        MetricsWait {
            timeout: Duration::from_secs(180),
            poll: Duration::from_secs(2),
        }
    }
}

/// Waits until the APIService [`API_SERVICE`] is `Available` and PodMetrics for at
/// least one pod matching `selector` in `namespace` are served.
///
/// "Not yet" answers (APIService missing or unavailable, 404/503 from the metrics
/// API, no PodMetrics yet) are retried; authorization failures are not, since
/// waiting cannot fix them.
pub async fn wait_for_pod_metrics(
    client: &Client,
    namespace: &str,
    selector: &str,
    wait: MetricsWait,
) -> Result<(), ClusterError> {
    let api_services: Api<APIService> = Api::all(client.clone());
    let pod_metrics: Api<PodMetrics> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(selector);
    let deadline = tokio::time::Instant::now() + wait.timeout;
    loop {
        let last_seen = match api_services.get(API_SERVICE).await {
            Err(e) => give_up_or(e, &format!("APIService {API_SERVICE}"))?,
            Ok(service) => match unavailable_reason(&service) {
                Some(reason) => format!("APIService {API_SERVICE} not Available: {reason}"),
                None => match pod_metrics.list(&params).await {
                    Err(e) => give_up_or(e, &format!("PodMetrics of {selector}"))?,
                    Ok(list) if list.items.iter().any(|m| !m.containers.is_empty()) => {
                        return Ok(());
                    }
                    Ok(_) => format!(
                        "APIService Available, but no PodMetrics for {selector} in {namespace} yet \
                         (metrics-server needs two scrapes of a pod)"
                    ),
                },
            },
        };
        if tokio::time::Instant::now() + wait.poll > deadline {
            return Err(ClusterError::Timeout {
                what: format!("wait for metrics-server to serve PodMetrics of {selector}"),
                after: wait.timeout,
                last_seen: format!(
                    "{last_seen}. Check `kubectl -n {NAMESPACE} logs deploy/{DEPLOYMENT}` \
                     (on kind it needs --kubelet-insecure-tls)"
                ),
            });
        }
        tracing::debug!(%last_seen, "waiting for metrics-server");
        tokio::time::sleep(wait.poll).await;
    }
}

/// A "not yet" error becomes the text of what was seen; others end the wait.
fn give_up_or(error: kube::Error, what: &str) -> Result<String, ClusterError> {
    match &error {
        kube::Error::Api(status) if matches!(status.code, 401 | 403) => Err(ClusterError::Kube {
            what: format!("read {what}"),
            source: error,
        }),
        _ => Ok(format!("{what}: {}", describe_kube_error(&error))),
    }
}

/// Why the APIService is not `Available` (`None` when it is).
pub fn unavailable_reason(service: &APIService) -> Option<String> {
    let available = service
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Available"));
    match available {
        Some(c) if c.status == "True" => None,
        Some(c) => Some(format!(
            "{} {}",
            c.reason.as_deref().unwrap_or("?"),
            c.message.as_deref().unwrap_or("")
        )),
        None => Some("no Available condition yet".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_replace_same_named_flags_and_keep_the_rest() {
        let current: Vec<String> = [
            "--cert-dir=/tmp",
            "--secure-port=10250",
            "--metric-resolution=15s",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            args_with(&current, &KIND_ARGS),
            [
                "--cert-dir=/tmp",
                "--secure-port=10250",
                "--kubelet-insecure-tls",
                "--metric-resolution=10s"
            ]
        );
        let done = args_with(&current, &KIND_ARGS);
        assert_eq!(args_with(&done, &KIND_ARGS), done, "idempotent");
    }
}
