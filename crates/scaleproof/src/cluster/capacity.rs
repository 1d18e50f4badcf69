//! The node's CPU as the scheduler books it: allocatable, and what the pods already
//! there requested. Parallel lanes ([`crate::gate`]) fit their pods' CPU limits into
//! the difference.
//!
//! The scheduler books each pod at its effective request (`PodRequests` in
//! `staging/src/k8s.io/component-helpers/resource/helpers.go`): its containers'
//! requests, or its largest init container's if that is more, plus its overhead;
//! pods in phase Succeeded or Failed hold nothing. Here only
//! the containers count: an init container has finished by the time lanes are
//! planned, and kind's pods declare no overhead.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::{Api, Client};

use super::ClusterError;
use crate::manifests::parse_cpu_millicores;

/// The node's CPU as the scheduler sees it, in millicores.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeCpu {
    /// `status.allocatable.cpu`, summed over the nodes.
    pub allocatable_m: u64,
    /// CPU requests of the pods already there.
    pub reserved_m: u64,
    /// Where the figures come from, for the report.
    pub source: String,
}

impl NodeCpu {
    /// What lanes may take.
    pub fn budget_m(&self) -> u64 {
        self.allocatable_m.saturating_sub(self.reserved_m)
    }
}

/// The allocatable CPU of the cluster's schedulable nodes, in millicores, and how
/// many nodes that is.
pub async fn allocatable_millicores(client: &Client) -> Result<(u64, usize), ClusterError> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(ClusterError::kube("list nodes"))?;
    let schedulable: Vec<&Node> = nodes.items.iter().filter(|n| schedulable(n)).collect();
    Ok((
        schedulable.iter().map(|n| allocatable_m(n)).sum(),
        schedulable.len(),
    ))
}

/// The CPU every live pod of the cluster requested, in millicores.
pub async fn requested_millicores(client: &Client) -> Result<u64, ClusterError> {
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(ClusterError::kube("list pods in all namespaces"))?;
    Ok(pods.items.iter().map(requested_m).sum())
}

/// Whether new pods may land on `node` (not cordoned).
fn schedulable(node: &Node) -> bool {
    !node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// `status.allocatable.cpu` in millicores (0 when absent or unreadable).
fn allocatable_m(node: &Node) -> u64 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get("cpu"))
        .and_then(|q| parse_cpu_millicores(&q.0))
        .unwrap_or(0)
}

/// The CPU `pod` holds on its node: its containers' requests, nothing once it ended.
fn requested_m(pod: &Pod) -> u64 {
    let ended = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    if ended {
        return 0;
    }
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get("cpu"))
        .filter_map(|q| parse_cpu_millicores(&q.0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(phase: &str, requests: &[&str]) -> Pod {
        let containers: Vec<serde_json::Value> = requests
            .iter()
            .map(|r| serde_json::json!({"name": "c", "resources": {"requests": {"cpu": r}}}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": containers},
            "status": {"phase": phase},
        }))
        .expect("a pod")
    }

    #[test]
    fn live_pods_hold_their_containers_requests_ended_ones_nothing() {
        assert_eq!(requested_m(&pod("Running", &["250m", "0.1"])), 350);
        assert_eq!(requested_m(&pod("Pending", &["100m"])), 100);
        assert_eq!(requested_m(&pod("Succeeded", &["100m"])), 0);
        assert_eq!(requested_m(&pod("Failed", &["1"])), 0);
        let no_requests: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}]},
        }))
        .expect("a pod");
        assert_eq!(requested_m(&no_requests), 0);
    }

    #[test]
    fn allocatable_counts_schedulable_nodes_only() {
        let node = |cpu: &str, cordoned: bool| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "n"},
                "spec": {"unschedulable": cordoned},
                "status": {"allocatable": {"cpu": cpu}},
            }))
            .expect("a node")
        };
        assert_eq!(allocatable_m(&node("4", false)), 4000);
        assert_eq!(allocatable_m(&node("3500m", false)), 3500);
        assert!(schedulable(&node("4", false)));
        assert!(!schedulable(&node("4", true)));
    }
}
