//! The reset between scenarios: every scenario starts in a state indistinguishable
//! from a fresh deploy: one ready pod, idle, and an HPA with no memory.
//!
//! Three things from the previous scenario can leak into the next one, and the reset
//! waits each of them out (all within one bounded wait):
//! - **The HPA controller's memory.** Deleting the HPA drops its recommendations and
//!   scale events only when the controller's already-queued reconcile finds it gone,
//!   up to one sync period later (`pkg/controller/podautoscaler/horizontal.go`,
//!   `reconcileKey`); an HPA re-applied sooner inherits the previous scenario's
//!   stabilization window. So the HPA stays absent for two sync periods.
//! - **Replicas.** The Deployment is scaled to 1 and the reset waits for exactly one
//!   pod (terminating ones count until they are gone: they still hold CPU), ready.
//! - **CPU in the metrics pipeline.** metrics-server's last window can still hold the
//!   previous scenario's load, and the new HPA's first sync would act on it. The
//!   reset waits until the remaining pod's PodMetrics show CPU below the HPA's target.

use std::time::Duration;

use k8s_metrics::v1beta1::PodMetrics;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use tokio::time::Instant;

use super::objects::Target;
use super::{ClusterError, apply, describe_kube_error, describe_metrics_api_error, is_not_found};
use crate::manifests::HpaOverrides;

/// How long the reset may take, how often it looks, and the cluster's HPA sync period.
#[derive(Debug, Clone, Copy)]
pub struct ResetTimings {
    /// The whole reset's deadline (scale-down waits for graceful termination, 30 s
    /// in k8s/, and metrics-server needs a scrape or two after that).
    pub settle_timeout: Duration,
    pub poll: Duration,
    /// The controller-manager's `--horizontal-pod-autoscaler-sync-period` (kind: 5 s,
    /// verified at setup; upstream default 15 s). The HPA stays deleted for twice this.
    pub hpa_sync_period: Duration,
}

impl Default for ResetTimings {
    fn default() -> Self {
        ResetTimings {
            settle_timeout: Duration::from_secs(180),
            poll: Duration::from_secs(1),
            hpa_sync_period: Duration::from_secs(15),
        }
    }
}

/// What the reset waited for, for the scenario's report.
#[derive(Debug, Clone, PartialEq)]
pub struct ResetReport {
    /// From the HPA's deletion until it was applied again.
    pub took: Duration,
    /// The remaining pod's CPU when the reset let the scenario start (`None` when the
    /// HPA has no cpu target to compare with).
    pub idle_cpu_millicores: Option<u64>,
    /// The CPU it had to be below.
    pub cpu_threshold_millicores: Option<u64>,
}

/// Deletes the HPA, scales the Deployment to 1, waits until the state is that of a
/// fresh deploy (see the module docs), then applies `base_hpa` (placed in the target
/// namespace) changed by `overrides`. `cpu_request_millicores` is the pod's CPU
/// request, against which the HPA's utilization target is a CPU threshold.
#[tracing::instrument(level = "debug", name = "cluster::reset::reset", skip_all)]
pub async fn reset(
    client: &Client,
    target: &Target,
    base_hpa: &HorizontalPodAutoscaler,
    overrides: &HpaOverrides,
    cpu_request_millicores: u64,
    timings: ResetTimings,
) -> Result<ResetReport, ClusterError> {
    let hpa = overrides.apply_to(base_hpa)?;
    let threshold = cpu_threshold_millicores(&hpa, cpu_request_millicores);
    let ns = target.namespace.as_str();
    let started = Instant::now();
    let deadline = started + timings.settle_timeout;

    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    match hpas.delete(&target.hpa, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {} // already gone: nothing to forget
        Err(e) => {
            return Err(ClusterError::kube(format!(
                "delete HPA {ns}/{}",
                target.hpa
            ))(e));
        }
    }
    let hpa_forgotten_at = started + timings.hpa_sync_period * 2;

    // The scale subresource touches only the replica count, whoever owns the rest.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .patch_scale(
            &target.deployment,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": { "replicas": 1 } })),
        )
        .await
        .map_err(ClusterError::kube(format!(
            "scale Deployment {ns}/{} to 1",
            target.deployment
        )))?;

    let pod = wait_for_single_ready_pod(client, target, deadline, timings.poll).await?;
    let idle = match threshold {
        Some(threshold) => {
            Some(wait_for_idle_cpu(client, target, &pod, threshold, deadline, timings.poll).await?)
        }
        None => None,
    };
    // The controller's memory of the deleted HPA is gone once its queued reconcile
    // has found it missing: wait out the rest of two sync periods.
    if Instant::now() < hpa_forgotten_at {
        if hpa_forgotten_at > deadline {
            return Err(ClusterError::Timeout {
                what: format!("keep HPA {ns}/{} deleted for two sync periods", target.hpa),
                after: timings.settle_timeout,
                last_seen: format!(
                    "the sync period is {}s, more than half the reset's limit",
                    timings.hpa_sync_period.as_secs_f64()
                ),
            });
        }
        tokio::time::sleep_until(hpa_forgotten_at).await;
    }
    apply::apply_hpa(client, ns, &hpa).await?;
    Ok(ResetReport {
        took: started.elapsed(),
        idle_cpu_millicores: idle,
        cpu_threshold_millicores: threshold,
    })
}

/// The CPU a pod must be below for the HPA to see no load: its cpu target
/// (`Utilization` of the request, or an `AverageValue`); `None` without a cpu metric.
pub fn cpu_threshold_millicores(
    hpa: &HorizontalPodAutoscaler,
    cpu_request_millicores: u64,
) -> Option<u64> {
    let spec = scaleproof_hpa::HpaSpec::try_from(hpa).ok()?;
    if let Some(pct) = spec.cpu_utilization_target() {
        return Some(cpu_request_millicores * u64::from(pct) / 100);
    }
    spec.metrics
        .iter()
        .find_map(|m| match (m.resource, m.target) {
            (
                scaleproof_hpa::ResourceName::Cpu,
                scaleproof_hpa::MetricTarget::AverageValue(milli),
            ) => Some(milli),
            _ => None,
        })
}

/// Polls the Deployment's pods until exactly one exists (terminating ones count until
/// they are gone, since they still hold CPU) and it is ready; returns its name.
pub async fn wait_for_single_ready_pod(
    client: &Client,
    target: &Target,
    deadline: Instant,
    poll: Duration,
) -> Result<String, ClusterError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let params = ListParams::default().labels(&target.selector);
    let started = Instant::now();
    let what = format!(
        "wait for exactly 1 ready pod of Deployment {}/{}",
        target.namespace, target.deployment
    );
    loop {
        let last_seen = match pods.list(&params).await {
            Ok(list) => {
                let (alive, ready) = count_pods(&list.items);
                if let ([_], [name]) = (alive.as_slice(), ready.as_slice()) {
                    return Ok(name.clone());
                }
                format!("{} pods, {} ready", alive.len(), ready.len())
            }
            // A passing API hiccup must not end the reset: retry until the deadline.
            Err(e) if retryable(&e) => describe_kube_error(&e),
            Err(e) => {
                return Err(ClusterError::kube(format!(
                    "list pods {} in {}",
                    target.selector, target.namespace
                ))(e));
            }
        };
        if Instant::now() + poll > deadline {
            return Err(ClusterError::Timeout {
                what,
                after: started.elapsed(),
                last_seen,
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// Polls PodMetrics until `pod`'s CPU is below `threshold` millicores; returns it.
pub async fn wait_for_idle_cpu(
    client: &Client,
    target: &Target,
    pod: &str,
    threshold: u64,
    deadline: Instant,
    poll: Duration,
) -> Result<u64, ClusterError> {
    let metrics: Api<PodMetrics> = Api::namespaced(client.clone(), &target.namespace);
    let params = ListParams::default().labels(&target.selector);
    let started = Instant::now();
    let mut last_seen = format!("no PodMetrics for {pod} yet");
    loop {
        match metrics.list(&params).await {
            Ok(list) => {
                let usage = list
                    .items
                    .iter()
                    .find(|m| m.metadata.name.as_deref() == Some(pod))
                    .and_then(|m| m.cpu().ok())
                    .map(|cores| (cores * 1000.0).round().max(0.0) as u64);
                match usage {
                    Some(m) if m < threshold => return Ok(m),
                    Some(m) => {
                        last_seen = format!("{pod} at {m}m CPU, target {threshold}m");
                    }
                    None => last_seen = format!("no PodMetrics for {pod} yet"),
                }
            }
            Err(e) if retryable(&e) || is_not_found(&e) => {
                last_seen = format!("metrics API: {}", describe_metrics_api_error(&e));
            }
            Err(e) => {
                return Err(ClusterError::kube(format!(
                    "list PodMetrics {} in {}",
                    target.selector, target.namespace
                ))(e));
            }
        }
        if Instant::now() + poll > deadline {
            return Err(ClusterError::Timeout {
                what: format!(
                    "wait until the remaining pod's CPU is below the HPA's target ({threshold}m), \
                     so the next scenario does not start warm"
                ),
                after: started.elapsed(),
                last_seen,
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// Errors worth another try: the API server or the aggregated metrics API briefly
/// unavailable, throttling, timeouts, a broken connection.
pub fn retryable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// (names of the pods that exist and have not finished, names of those ready and
/// not terminating).
fn count_pods(pods: &[Pod]) -> (Vec<String>, Vec<String>) {
    let alive: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .collect();
    let name = |p: &&Pod| p.metadata.name.clone().unwrap_or_default();
    let ready = alive
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
        .map(name)
        .collect();
    (alive.iter().map(name).collect(), ready)
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
