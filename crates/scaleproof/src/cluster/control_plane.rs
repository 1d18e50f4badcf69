//! A check that the controller-manager runs with the HPA sync period `k8s/kind.yaml`
//! asks for.
//!
//! kind applies `kubeadmConfigPatches` only when they match the kubeadm config it
//! generates; a patch that does not match is dropped without a word. The HPA would
//! then sync every 15 s instead of 5 s and every scaling verdict would be late, so
//! the harness reads the flag back from the controller-manager's static pod.

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};

use super::ClusterError;

/// The label kubeadm puts on the controller-manager's static pod.
pub const CONTROLLER_MANAGER_SELECTOR: &str = "component=kube-controller-manager";
/// The flag that sets how often the HPA controller evaluates every HPA.
pub const HPA_SYNC_PERIOD_FLAG: &str = "--horizontal-pod-autoscaler-sync-period";

/// Fails unless the controller-manager runs with `--horizontal-pod-autoscaler-sync-period`
/// set to `expected` (for example `"5s"`).
pub async fn verify_hpa_sync_period(client: &Client, expected: &str) -> Result<(), ClusterError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let list = pods
        .list(&ListParams::default().labels(CONTROLLER_MANAGER_SELECTOR))
        .await
        .map_err(ClusterError::kube("list the kube-controller-manager pod"))?;
    let pod = list.items.first().ok_or_else(|| {
        ClusterError::Invalid(format!(
            "no pod labeled {CONTROLLER_MANAGER_SELECTOR} in kube-system: cannot check the HPA sync period"
        ))
    })?;
    let words: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.command.iter().flatten().chain(c.args.iter().flatten()))
        .cloned()
        .collect();
    let actual = words
        .iter()
        .find_map(|w| w.strip_prefix(&format!("{HPA_SYNC_PERIOD_FLAG}=")));
    match actual {
        Some(value) if value == expected => Ok(()),
        other => Err(ClusterError::Invalid(format!(
            "kube-controller-manager runs with {HPA_SYNC_PERIOD_FLAG}={} instead of {expected}: \
             the kubeadmConfigPatches of k8s/kind.yaml did not apply (does the kind version \
             convert them for the node image's kubeadm config version?)",
            other.unwrap_or("<unset, default 15s>")
        ))),
    }
}
