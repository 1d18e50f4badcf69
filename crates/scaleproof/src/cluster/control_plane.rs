//! A check that the controller-manager runs with the HPA sync period `k8s/kind.yaml`
//! asks for.
//!
//! kind applies `kubeadmConfigPatches` only when they match the kubeadm config it
//! generates; a patch that does not match is dropped without a word. The HPA would
//! then sync every 15 s instead of 5 s and every scaling verdict would be late, so
//! the harness reads the flag back from the controller-manager's static pod.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::time::Instant;

use super::reset::retryable;
use super::{ClusterError, describe_kube_error};

/// The labels kubeadm puts on the controller-manager's static pod
/// (kubernetes `cmd/kubeadm/app/util/staticpod/utils.go`, `ComponentPod`).
pub const CONTROLLER_MANAGER_SELECTOR: &str =
    "component=kube-controller-manager,tier=control-plane";
/// The flag that sets how often the HPA controller evaluates every HPA.
pub const HPA_SYNC_PERIOD_FLAG: &str = "--horizontal-pod-autoscaler-sync-period";

/// How long to look for the controller-manager's pod, and how often.
#[derive(Debug, Clone, Copy)]
pub struct MirrorPodWait {
    pub timeout: Duration,
    pub poll: Duration,
}

impl Default for MirrorPodWait {
    /// The kubelet creates a static pod's mirror in the API only once it sees its own
    /// Node object, on its next sync of the pod (`syncFrequency`, 1 min), and `kind
    /// create cluster --wait` waits for the Node to be Ready only: allow more than one
    /// sync of the kubelet.
    fn default() -> Self {
        MirrorPodWait {
            timeout: Duration::from_secs(90),
            poll: Duration::from_secs(2),
        }
    }
}

/// Fails unless the controller-manager runs with `--horizontal-pod-autoscaler-sync-period`
/// set to `expected` (for example `"5s"`). Waits (with retries) for the mirror pod to
/// appear; see [`MirrorPodWait`].
#[tracing::instrument(
    level = "debug",
    name = "cluster::control_plane::verify_hpa_sync_period",
    skip_all
)]
pub async fn verify_hpa_sync_period(
    client: &Client,
    expected: &str,
    wait: MirrorPodWait,
) -> Result<(), ClusterError> {
    let pod = find_controller_manager(client, wait).await?;
    check_flag(&pod, expected)
}

/// The controller-manager's mirror pod, looked for until `wait.timeout`: a missing
/// pod and passing API errors are retried, with what was last seen in the timeout.
pub async fn find_controller_manager(
    client: &Client,
    wait: MirrorPodWait,
) -> Result<Pod, ClusterError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let params = ListParams::default().labels(CONTROLLER_MANAGER_SELECTOR);
    let started = Instant::now();
    loop {
        let last_seen = match pods.list(&params).await {
            Ok(list) => match list.items.into_iter().next() {
                Some(pod) => return Ok(pod),
                None => format!("no pod labeled {CONTROLLER_MANAGER_SELECTOR} in kube-system yet"),
            },
            Err(e) if retryable(&e) => describe_kube_error(&e),
            Err(e) => {
                return Err(ClusterError::kube("list the kube-controller-manager pod")(
                    e,
                ));
            }
        };
        if started.elapsed() + wait.poll > wait.timeout {
            return Err(ClusterError::Timeout {
                what: "wait for the kube-controller-manager pod, to check the HPA sync period"
                    .into(),
                after: started.elapsed(),
                last_seen,
            });
        }
        tokio::time::sleep(wait.poll).await;
    }
}

/// The flags the controller-manager pod runs with (kubeadm puts them all in
/// `command`, as `--name=value`).
pub fn flags(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.command.iter().flatten().chain(c.args.iter().flatten()))
        .cloned()
        .collect()
}

fn check_flag(pod: &Pod, expected: &str) -> Result<(), ClusterError> {
    let words = flags(pod);
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
