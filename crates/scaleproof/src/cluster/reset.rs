//! The reset between scenarios: every scenario starts from one ready pod and an HPA
//! with no memory of the previous scenario.
//!
//! Deleting the HPA (rather than patching it) is what drops its recommendation
//! history: a scale-down stabilization window would otherwise keep the previous
//! scenario's replicas alive into the next one.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};

use super::objects::Target;
use super::{ClusterError, apply, is_not_found};
use crate::manifests::HpaOverrides;

/// How long the reset may wait for the workload to settle at one pod, and how often
/// it looks.
#[derive(Debug, Clone, Copy)]
pub struct ResetTimings {
    pub settle_timeout: Duration,
    pub poll: Duration,
}

impl Default for ResetTimings {
    fn default() -> Self {
        // Scale-down waits for the pods' graceful termination (30 s in k8s/).
        ResetTimings {
            settle_timeout: Duration::from_secs(120),
            poll: Duration::from_secs(1),
        }
    }
}

/// Deletes the HPA, scales the Deployment to 1, waits for exactly one ready pod, and
/// applies `base_hpa` (placed in the target namespace) changed by `overrides`.
pub async fn reset(
    client: &Client,
    target: &Target,
    base_hpa: &HorizontalPodAutoscaler,
    overrides: &HpaOverrides,
    timings: ResetTimings,
) -> Result<(), ClusterError> {
    let hpa = overrides.apply_to(base_hpa)?;
    let ns = target.namespace.as_str();

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

    wait_for_single_ready_pod(client, target, timings).await?;
    apply::apply_hpa(client, ns, &hpa).await
}

/// Polls the Deployment's pods until exactly one exists (terminating ones count until
/// they are gone, since they still hold CPU) and it is ready.
pub async fn wait_for_single_ready_pod(
    client: &Client,
    target: &Target,
    timings: ResetTimings,
) -> Result<(), ClusterError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let params = ListParams::default().labels(&target.selector);
    let deadline = tokio::time::Instant::now() + timings.settle_timeout;
    loop {
        let list = pods
            .list(&params)
            .await
            .map_err(ClusterError::kube(format!(
                "list pods {} in {}",
                target.selector, target.namespace
            )))?;
        let (alive, ready) = count_pods(&list.items);
        if alive == 1 && ready == 1 {
            return Ok(());
        }
        if tokio::time::Instant::now() + timings.poll > deadline {
            return Err(ClusterError::Timeout {
                what: format!(
                    "wait for exactly 1 ready pod of Deployment {}/{}",
                    target.namespace, target.deployment
                ),
                after: timings.settle_timeout,
                last_seen: format!("{alive} pods, {ready} ready"),
            });
        }
        tokio::time::sleep(timings.poll).await;
    }
}

/// (pods that exist and have not finished, of them ready and not terminating).
fn count_pods(pods: &[Pod]) -> (usize, usize) {
    let alive: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .collect();
    let ready = alive
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
        .count();
    (alive.len(), ready)
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
