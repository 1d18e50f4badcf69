//! A pod's QoS class and the `oom_score_adj` a kubelet gives its containers: what
//! decides whom the kernel's OOM killer picks when a container's memory cgroup (or
//! the node) runs out, so a container here is ranked as on a node.
//!
//! The rules are the API server's and the kubelet's: the class from every
//! container's requests and limits (`pkg/apis/core/v1/helper/qos/qos.go`,
//! `GetPodQOS`: Guaranteed when each container has cpu and memory limits equal to
//! its requests, BestEffort when none has any, else Burstable), and the score from
//! the class (`pkg/kubelet/qos/policy.go`, `GetContainerOOMScoreAdjust`: Guaranteed
//! -997, BestEffort 1000, Burstable `1000 - 1000 × memory request / node memory`,
//! kept within 3..=999).

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// `guaranteedOOMScoreAdj` of `policy.go`.
const GUARANTEED: i64 = -997;
/// `besteffortOOMScoreAdj` of `policy.go`.
const BEST_EFFORT: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// As `status.qosClass` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }

    /// The pod's class from its containers' requests and limits (requests already
    /// defaulted from limits by the API server, as here).
    pub fn of(pod: &Pod) -> QosClass {
        let containers: Vec<&Container> = pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .collect();
        let amounts = |c: &Container, limits: bool| {
            let r = c.resources.as_ref();
            let map = if limits {
                r.and_then(|r| r.limits.as_ref())
            } else {
                r.and_then(|r| r.requests.as_ref())
            };
            ["cpu", "memory"]
                .map(|name| map.and_then(|m| m.get(name)).map(amount).filter(|v| *v > 0))
        };
        let mut any = false;
        let mut guaranteed = true;
        for c in &containers {
            let requests = amounts(c, false);
            let limits = amounts(c, true);
            any |= requests.iter().chain(limits.iter()).any(Option::is_some);
            guaranteed &= limits.iter().all(Option::is_some) && requests == limits;
        }
        match (any, guaranteed) {
            (false, _) => QosClass::BestEffort,
            (true, true) => QosClass::Guaranteed,
            (true, false) => QosClass::Burstable,
        }
    }
}

/// A quantity in thousandths, comparable across its spellings (`1` and `1000m`).
fn amount(q: &Quantity) -> u64 {
    scaleproof_hpa::parse_milli(&q.0).unwrap_or(0)
}

/// The `oom_score_adj` the kubelet writes for `container` of `pod` on a node with
/// `memory_capacity` bytes.
pub fn oom_score_adj(pod: &Pod, container: &Container, memory_capacity: u64) -> i64 {
    match QosClass::of(pod) {
        QosClass::Guaranteed => GUARANTEED,
        QosClass::BestEffort => BEST_EFFORT,
        QosClass::Burstable => {
            let request = container
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|m| m.get("memory"))
                .map_or(0, |q| amount(q) / 1000);
            let capacity = memory_capacity.max(1);
            let adj = 1000
                - i64::try_from(1000 * u128::from(request) / u128::from(capacity)).unwrap_or(1000);
            // Above any Guaranteed container, below any BestEffort one.
            adj.clamp(1000 + GUARANTEED, BEST_EFFORT - 1)
        }
    }
}

/// The node's memory: `MemTotal` of `/proc/meminfo` (the kubelet's machine info
/// reads the same), or `None` when it cannot be read.
pub fn node_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(resources: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "resources": resources}]},
        }))
        .expect("a pod")
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_class_follows_requests_and_limits() {
        let burstable = pod(json!({
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "200m", "memory": "256Mi"},
        }));
        assert_eq!(QosClass::of(&burstable), QosClass::Burstable);
        let guaranteed = pod(json!({
            "requests": {"cpu": "0.2", "memory": "256Mi"},
            "limits": {"cpu": "200m", "memory": "256Mi"},
        }));
        assert_eq!(QosClass::of(&guaranteed), QosClass::Guaranteed);
        // Only a cpu limit: memory is not guaranteed.
        let cpu_only = pod(json!({"requests": {"cpu": "200m"}, "limits": {"cpu": "200m"}}));
        assert_eq!(QosClass::of(&cpu_only), QosClass::Burstable);
        assert_eq!(QosClass::of(&pod(json!({}))), QosClass::BestEffort);
    }

    #[test]
    fn the_score_is_the_kubelets() {
        let p = pod(json!({
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "200m", "memory": "256Mi"},
        }));
        let c = &p.spec.as_ref().expect("spec").containers[0];
        // 128Mi of 24 GiB: 1000 - 5 = 995.
        assert_eq!(oom_score_adj(&p, c, 24 * GIB), 995);
        // A request of the whole node: kept above Guaranteed's 3.
        assert_eq!(oom_score_adj(&p, c, 128 << 20), 3);
        // A request too small to count: kept below BestEffort's 1000.
        assert_eq!(oom_score_adj(&p, c, 1 << 50), 999);
        let g = pod(json!({"limits": {"cpu": "1", "memory": "1Gi"},
                           "requests": {"cpu": "1", "memory": "1Gi"}}));
        let gc = &g.spec.as_ref().expect("spec").containers[0];
        assert_eq!(oom_score_adj(&g, gc, 24 * GIB), -997);
    }
}
