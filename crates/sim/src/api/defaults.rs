//! The API server's defaults for a Pod that the harness depends on, applied where the
//! simulated control plane creates pods (the ReplicaSet controller's create goes
//! through the API server's defaulting on a real cluster).
//!
//! Applied, each from kubernetes `pkg/apis/core/v1/defaults.go`:
//! - `SetDefaults_Pod`: a container (or init container) with `resources.limits` but
//!   no request for one of them gets the limit as its request. Only on Pods, not on
//!   the PodTemplate of a Deployment: the template keeps what was written, its pods
//!   carry the request, and the HPA computes utilization against it.
//!
//! Not applied (nothing in the harness reads them): the other container defaults
//! (`terminationMessagePath`, `imagePullPolicy`, probe thresholds, which the kubelet
//! defaults itself when reading the spec), `restartPolicy`, `dnsPolicy`,
//! `schedulerName`, `securityContext`.

use serde_json::Value;

/// Applies the defaults listed in the module docs to a Pod object.
pub fn pod(pod: &mut Value) {
    for list in ["containers", "initContainers"] {
        let Some(containers) = pod["spec"][list].as_array_mut() else {
            continue;
        };
        for container in containers {
            requests_from_limits(container);
        }
    }
}

/// `SetDefaults_Pod`: each limit without a request of the same name becomes one.
fn requests_from_limits(container: &mut Value) {
    let Some(limits) = container["resources"]["limits"].as_object().cloned() else {
        return;
    };
    let resources = &mut container["resources"];
    if !resources["requests"].is_object() {
        resources["requests"] = Value::Object(Default::default());
    }
    if let Some(requests) = resources["requests"].as_object_mut() {
        for (name, quantity) in limits {
            requests.entry(name).or_insert(quantity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_limit_without_a_request_becomes_the_request() {
        let mut p = json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "200m"}, "requests": {"cpu": "100m"}}},
            {"name": "c"},
        ], "initContainers": [
            {"name": "i", "resources": {"limits": {"cpu": "50m"}}},
        ]}});
        pod(&mut p);
        let c = &p["spec"]["containers"];
        assert_eq!(
            c[0]["resources"]["requests"],
            json!({"cpu": "200m", "memory": "64Mi"})
        );
        // A request that was written stays; only the missing one is filled.
        assert_eq!(c[1]["resources"]["requests"], json!({"cpu": "100m"}));
        assert!(c[2]["resources"].is_null(), "no limits, nothing to default");
        assert_eq!(
            p["spec"]["initContainers"][0]["resources"]["requests"],
            json!({"cpu": "50m"})
        );
    }
}
