//! A fresh namespace per scenario: the workload of `k8s/` applied anew into a
//! namespace of its own, with the scenario's HPA and a node port of its own, and
//! waited for until it is what a scenario starts from: exactly one ready pod whose
//! PodMetrics are served and show it below the HPA's CPU target.
//!
//! The HPA comes last, once the pod is idle, as the reset re-creates it last. An HPA
//! there from the start would judge the pod's start-up: the controller counts a CPU
//! sample whose window ends one window after the Ready condition's
//! `lastTransitionTime` (`groupPods`, `pkg/controller/podautoscaler/
//! replica_calculator.go`), and that time has a resolution of one second, so up to a
//! second of start-up work (a model trained, a JIT warming) counts as load. Under a
//! 15 s metric window that is a few percent; under the local backend's 1 s (`fast`)
//! it is the whole window, and the HPA scaled out before the scenario began.
//!
//! This is what [`super::reset`] approximates in place, without its two waits: a new
//! HPA has no controller memory to wait out (the reset keeps the HPA deleted for two
//! sync periods), and a new Deployment's only pod never carried load, so nothing of
//! the previous scenario can leak in. Preparing takes a rollout and two
//! metrics-server scrapes, which the harness can spend while the previous scenario
//! runs; deleting a finished namespace takes its pods with it, in the background.
//!
//! Node ports are the node's, not the namespace's: the API server refuses a second
//! Service on a port another one holds ("provided port is already allocated"), so
//! each namespace alive at once needs its own, from a small fixed pool that kind maps
//! to loopback ([`node_port_pool`]).

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::DeleteParams;
use kube::{Api, Client};
use tokio::time::Instant;

use super::objects::{Prepared, Target};
use super::{ClusterError, apply, is_not_found, reset, rollout};

/// How many namespaces may hold a node port at once: the running scenario's, the
/// next one's being prepared, and two finished ones whose deletion has not yet
/// released theirs (a namespace's Service goes only as its deletion proceeds).
pub const POOL_SIZE: u16 = 4;

/// The node ports kind maps for fresh namespaces: `first` (the manifest's) and the
/// next [`POOL_SIZE`]` - 1`.
pub fn node_port_pool(first: u16) -> Vec<u16> {
    (0..POOL_SIZE)
        .filter_map(|i| first.checked_add(i))
        .collect()
}

/// The order fresh namespaces take the pool's ports in: `first` last, since setup's
/// namespace holds it until its deletion, which starts when the first scenario's
/// namespace is ready. A port comes round again every [`POOL_SIZE`] scenarios, by
/// when its previous holder was deleted two scenarios ago.
pub fn node_port_turns(first: u16) -> Vec<u16> {
    let mut pool = node_port_pool(first);
    pool.rotate_left(1);
    pool
}

/// Whether `error` is the API server refusing a node port another Service holds.
fn node_port_taken(error: &ClusterError) -> bool {
    matches!(error, ClusterError::Kube { source: kube::Error::Api(status), .. }
        if status.code == 422 && status.message.contains("provided port is already allocated"))
}

/// The namespace of the `index`-th (from 0) scenario run, `scenario`, under `base`
/// (`stress.toml`'s namespace): `<base>-<index>-<scenario>`, made a valid DNS-1123
/// label (lower case, `-` for anything else, at most 63 characters, no `-` at
/// either end). The index keeps two runs of one scenario (`--repeat`) apart.
pub fn namespace_for(base: &str, index: usize, scenario: &str) -> String {
    let raw = format!("{base}-{index}-{scenario}").to_ascii_lowercase();
    let mut label: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    label.truncate(63);
    label.trim_matches('-').to_string()
}

/// What preparing a fresh namespace waited for.
#[derive(Debug, Clone, PartialEq)]
pub struct FreshReport {
    /// From the first apply until the namespace was ready for its scenario.
    pub took: Duration,
    /// The pod's CPU when it counted as idle (`None` without a CPU target).
    pub idle_cpu_millicores: Option<u64>,
}

/// Applies `prepared`'s workload (a namespace of its own, see
/// [`Prepared::with_node_port`]), waits until its one pod is ready, measured by
/// metrics-server, and idle, then applies its HPA; at most `timeout` in all. `cpu_request_millicores` is the pod's CPU request, against which
/// the HPA's target is a CPU threshold.
#[tracing::instrument(level = "debug", name = "cluster::fresh::prepare", skip_all)]
pub async fn prepare(
    client: &Client,
    prepared: &Prepared,
    cpu_request_millicores: u64,
    timeout: Duration,
    poll: Duration,
) -> Result<FreshReport, ClusterError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let target = &prepared.target;
    // A port whose previous holder's namespace is still being deleted is refused
    // until its Service is gone: wait for it, within the deadline.
    loop {
        match apply::apply_workload_without_hpa(client, prepared).await {
            Err(e) if node_port_taken(&e) && Instant::now() + poll < deadline => {
                tracing::debug!("{e}; waiting for its holder's namespace to be deleted");
                tokio::time::sleep(poll).await;
            }
            result => break result?,
        }
    }
    rollout::wait_for_rollout(
        client,
        &target.namespace,
        &target.deployment,
        &target.selector,
        deadline.saturating_duration_since(Instant::now()),
    )
    .await?;
    let pod = reset::wait_for_single_ready_pod(client, target, deadline, poll).await?;
    let threshold = reset::cpu_threshold_millicores(&prepared.hpa, cpu_request_millicores);
    // Without a CPU target "idle" has no threshold; PodMetrics must still be served,
    // or the HPA's first syncs would see no metrics at the scenario's start.
    let idle = reset::wait_for_idle_cpu(
        client,
        target,
        &pod,
        threshold.unwrap_or(u64::MAX),
        deadline,
        poll,
    )
    .await?;
    // Only now the HPA (see the module's notes): its first sync, one period after it
    // appears, reads a pod that has been idle for a whole metric window.
    apply::apply_hpa(client, &target.namespace, &prepared.hpa).await?;
    Ok(FreshReport {
        took: started.elapsed(),
        idle_cpu_millicores: threshold.map(|_| idle),
    })
}

/// Deletes `target`'s namespace and returns at once: the API server deletes its
/// objects, the pods' graceful termination included, in the background. A namespace
/// already gone is no error.
pub async fn delete(client: &Client, target: &Target) -> Result<(), ClusterError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces
        .delete(&target.namespace, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(ClusterError::kube(format!(
            "delete namespace {}",
            target.namespace
        ))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_dns_labels_and_tell_runs_apart() {
        assert_eq!(
            namespace_for("scaleproof", 0, "scale-up-1000"),
            "scaleproof-0-scale-up-1000"
        );
        assert_ne!(
            namespace_for("scaleproof", 0, "burst"),
            namespace_for("scaleproof", 1, "burst")
        );
        assert_eq!(namespace_for("Sp", 2, "Odd_Name.x"), "sp-2-odd-name-x");
        let long = namespace_for("scaleproof", 10, &"a".repeat(80));
        assert!(long.len() <= 63, "{long}");
        let ends_in_dash = namespace_for("scaleproof", 3, &format!("{}-b", "a".repeat(49)));
        assert!(!ends_in_dash.ends_with('-'), "{ends_in_dash}");
    }

    #[test]
    fn the_pool_is_four_ports_from_the_first_taken_last() {
        assert_eq!(node_port_pool(30080), [30080, 30081, 30082, 30083]);
        assert_eq!(node_port_turns(30080), [30081, 30082, 30083, 30080]);
        assert_eq!(node_port_pool(u16::MAX).len(), 1, "never wraps around");
    }
}
