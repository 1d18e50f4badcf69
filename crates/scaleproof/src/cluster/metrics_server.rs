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

use super::{ClusterError, describe_kube_error, describe_metrics_api_error};

/// Where the upstream `components.yaml` installs metrics-server.
pub const NAMESPACE: &str = "kube-system";
/// The Deployment of the upstream `components.yaml`.
pub const DEPLOYMENT: &str = "metrics-server";
/// The label selector of its pods.
pub const POD_SELECTOR: &str = "k8s-app=metrics-server";
/// The aggregated API metrics-server registers.
pub const API_SERVICE: &str = "v1beta1.metrics.k8s.io";

/// The flags kind needs: kind's kubelets serve self-signed certificates without IP
/// SANs (so TLS verification must be off; metrics-server's own kind e2e setup adds
/// the same flag), and a resolution of 15 s.
///
/// 15 s, not metrics-server's 10 s minimum: it refuses to start unless 90 % of the
/// resolution is at least `--kubelet-request-timeout` (default 10 s), so 10 s alone
/// crash-loops (see [`check_args`]). The kubelet refreshes CPU stats about every 15 s
/// anyway, so a shorter resolution would not make the HPA see load sooner.
pub const KIND_ARGS: [&str; 2] = ["--kubelet-insecure-tls", "--metric-resolution=15s"];

/// The `--metric-resolution` of [`KIND_ARGS`] (15 s, also the resolution of
/// metrics-server's released `components.yaml`, which an existing cluster most likely
/// runs).
pub fn kind_resolution() -> Duration {
    KIND_ARGS
        .iter()
        .find_map(|a| a.strip_prefix("--metric-resolution="))
        .and_then(|v| v.strip_suffix('s'))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(15), Duration::from_secs)
}

/// metrics-server's defaults for the two flags its start-up validation relates
/// (`--metric-resolution` 60 s, `--kubelet-request-timeout` 10 s).
const DEFAULT_RESOLUTION: Duration = Duration::from_secs(60);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The smallest `--metric-resolution` metrics-server accepts.
const MIN_RESOLUTION: Duration = Duration::from_secs(10);

/// The start-up validation metrics-server applies to these flags, so that a patch
/// that would make it crash-loop is refused before it is sent. Mirrors
/// kubernetes-sigs/metrics-server v0.9.0 `cmd/metrics-server/app/options/options.go`
/// `Options.validate` (with the request timeout's default and positivity check from
/// `kubelet_client.go`): the resolution must be at least 10 s, and
/// `resolution * 9 / 10` must not be below `--kubelet-request-timeout`. The error
/// texts are metrics-server's own, so they can be found in its logs.
pub fn check_args(args: &[String]) -> Result<(), String> {
    let flag = |name: &str| {
        args.iter()
            .rev()
            .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
    };
    let duration = |name: &str, default: Duration| match flag(name) {
        None => Ok(default),
        Some(text) => go_duration(text).ok_or_else(|| format!("{name}={text}: not a duration")),
    };
    let resolution = duration("--metric-resolution", DEFAULT_RESOLUTION)?;
    let timeout = duration("--kubelet-request-timeout", DEFAULT_REQUEST_TIMEOUT)?;
    if timeout.is_zero() {
        return Err("kubelet-request-timeout should be positive".into());
    }
    if resolution < MIN_RESOLUTION {
        return Err(format!(
            "metric-resolution should be a time duration at least 10s, but value {} provided",
            show(resolution)
        ));
    }
    if resolution * 9 / 10 < timeout {
        return Err(format!(
            "metric-resolution should be larger than kubelet-request-timeout, but \
             metric-resolution value {} kubelet-request-timeout value {} provided",
            show(resolution),
            show(timeout)
        ));
    }
    Ok(())
}

/// A Go `time.ParseDuration` string of the units flags use (`15s`, `1m30s`,
/// `500ms`, `2h`); `None` for anything else.
fn go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += Duration::try_from_secs_f64(value * seconds).ok()?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// A duration as Go prints it for whole seconds (`15s`), else in seconds.
fn show(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Sets [`KIND_ARGS`] on the metrics-server container with a JSON patch. Idempotent:
/// flags of the same name are replaced rather than repeated, and nothing is sent when
/// they are already there. The patch `test`s the args it read, so a concurrent change
/// makes it fail instead of being overwritten. Returns whether it patched.
#[tracing::instrument(
    level = "debug",
    name = "cluster::metrics_server::configure_for_kind",
    skip_all
)]
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
    // Never send what metrics-server would refuse at start-up: the new ReplicaSet
    // would crash-loop and the old pod never become Ready.
    check_args(&wanted).map_err(|why| {
        ClusterError::Invalid(format!(
            "{what}: metrics-server would refuse its flags {}: {why}",
            wanted.join(" ")
        ))
    })?;
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
#[tracing::instrument(
    level = "debug",
    name = "cluster::metrics_server::wait_for_pod_metrics",
    skip_all
)]
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
            Err(e) => give_up_or(e, &format!("APIService {API_SERVICE}"), describe_kube_error)?,
            Ok(service) => match unavailable_reason(&service) {
                Some(reason) => format!("APIService {API_SERVICE} not Available: {reason}"),
                None => match pod_metrics.list(&params).await {
                    Err(e) => give_up_or(
                        e,
                        &format!("PodMetrics of {selector}"),
                        describe_metrics_api_error,
                    )?,
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
fn give_up_or(
    error: kube::Error,
    what: &str,
    describe: fn(&kube::Error) -> String,
) -> Result<String, ClusterError> {
    match &error {
        kube::Error::Api(status) if matches!(status.code, 401 | 403) => Err(ClusterError::Kube {
            what: format!("read {what}"),
            source: error,
        }),
        _ => Ok(format!("{what}: {}", describe(&error))),
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

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    /// The args of metrics-server v0.9.0's release `components.yaml`
    /// (kubernetes-sigs/metrics-server `manifests/base/deployment.yaml`).
    const RELEASE_ARGS: [&str; 5] = [
        "--cert-dir=/tmp",
        "--secure-port=10250",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        "--kubelet-use-node-status-port",
        "--metric-resolution=15s",
    ];

    /// The rule of kubernetes-sigs/metrics-server v0.9.0
    /// `cmd/metrics-server/app/options/options.go` (`Options.validate`): 90 % of
    /// `--metric-resolution` must not be below `--kubelet-request-timeout` (default
    /// 10 s, `options/kubelet_client.go`). What we patch in must pass it, or the new
    /// metrics-server pod crash-loops and setup times out.
    #[test]
    fn the_kind_flags_pass_metrics_servers_own_start_up_validation() {
        let patched = args_with(&strings(&RELEASE_ARGS), &KIND_ARGS);
        assert_eq!(check_args(&patched), Ok(()), "{patched:?}");
        assert_eq!(check_args(&strings(&RELEASE_ARGS)), Ok(()));
    }

    #[test]
    fn a_resolution_too_close_to_the_request_timeout_is_refused_with_its_own_words() {
        let err = check_args(&strings(&["--metric-resolution=10s"])).expect_err("10s");
        assert_eq!(
            err,
            "metric-resolution should be larger than kubelet-request-timeout, but \
             metric-resolution value 10s kubelet-request-timeout value 10s provided"
        );
        assert!(check_args(&strings(&["--metric-resolution=11s"])).is_err());
        assert_eq!(check_args(&strings(&["--metric-resolution=12s"])), Ok(()));
        // With the request timeout lowered alongside, 10 s is fine.
        assert_eq!(
            check_args(&strings(&[
                "--metric-resolution=10s",
                "--kubelet-request-timeout=9s"
            ])),
            Ok(())
        );
        assert!(
            check_args(&strings(&["--metric-resolution=5s"]))
                .expect_err("below the minimum")
                .contains("at least 10s")
        );
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("soon"), None);
    }

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
                "--metric-resolution=15s"
            ]
        );
        let done = args_with(&current, &KIND_ARGS);
        assert_eq!(args_with(&done, &KIND_ARGS), done, "idempotent");
    }
}
