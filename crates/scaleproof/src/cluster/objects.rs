//! The objects scaleproof applies, derived from `k8s/` without touching a cluster.
//!
//! Pure functions, so that a dry run prints exactly what a real run applies.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::ClusterError;
use crate::manifests::Manifests;

/// Pod Security Admission labels of the dedicated namespace: the workload must pass
/// the `restricted` profile (enforced), and anything that would not is also reported
/// in warnings and the audit log.
pub const POD_SECURITY_LABELS: [(&str, &str); 3] = [
    ("pod-security.kubernetes.io/enforce", "restricted"),
    ("pod-security.kubernetes.io/warn", "restricted"),
    ("pod-security.kubernetes.io/audit", "restricted"),
];

/// Where the workload lives and what its objects are called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub namespace: String,
    pub deployment: String,
    pub service: String,
    pub hpa: String,
    /// The Deployment's pod selector as a label selector string (`k=v,k2=v2`).
    pub selector: String,
}

impl Target {
    /// The names of `manifests`' objects, placed in `namespace`.
    pub fn from_manifests(manifests: &Manifests, namespace: &str) -> Result<Self, ClusterError> {
        let name = |meta: &ObjectMeta, kind: &str| {
            meta.name.clone().ok_or_else(|| {
                ClusterError::Invalid(format!("{kind} in k8s/ has no metadata.name"))
            })
        };
        Ok(Target {
            namespace: namespace.to_string(),
            deployment: name(&manifests.deployment.metadata, "Deployment")?,
            service: name(&manifests.service.metadata, "Service")?,
            hpa: name(&manifests.hpa.metadata, "HorizontalPodAutoscaler")?,
            selector: pod_selector(&manifests.deployment)?,
        })
    }
}

/// The Deployment's `spec.selector.matchLabels` as `k=v,k2=v2` (sorted by key).
pub fn pod_selector(deployment: &Deployment) -> Result<String, ClusterError> {
    let labels = deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .filter(|labels| !labels.is_empty())
        .ok_or_else(|| {
            ClusterError::Invalid(
                "Deployment in k8s/ has no spec.selector.matchLabels (scaleproof finds its pods by them)"
                    .into(),
            )
        })?;
    Ok(labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}

/// Per-scenario changes to the HPA of `k8s/hpa.yaml` (for example `maxReplicas: 1`
/// to show what happens when scaling is not allowed). `None` keeps the manifest's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HpaOverrides {
    pub min_replicas: Option<i32>,
    pub max_replicas: Option<i32>,
    pub target_cpu_pct: Option<i32>,
}

impl HpaOverrides {
    /// `hpa` with the overrides applied. A CPU target override replaces the
    /// `averageUtilization` of the CPU resource metric; it is an error when the HPA
    /// has no such metric, since the override would silently do nothing.
    pub fn apply_to(
        &self,
        hpa: &HorizontalPodAutoscaler,
    ) -> Result<HorizontalPodAutoscaler, ClusterError> {
        let mut hpa = hpa.clone();
        let name = hpa.metadata.name.clone().unwrap_or_default();
        let spec = hpa
            .spec
            .as_mut()
            .ok_or_else(|| ClusterError::Invalid(format!("HPA {name} has no spec")))?;
        if let Some(min) = self.min_replicas {
            spec.min_replicas = Some(min);
        }
        if let Some(max) = self.max_replicas {
            spec.max_replicas = max;
        }
        if let Some(target) = self.target_cpu_pct {
            let cpu = spec
                .metrics
                .iter_mut()
                .flatten()
                .filter_map(|m| m.resource.as_mut())
                .find(|r| r.name == "cpu")
                .ok_or_else(|| {
                    ClusterError::Invalid(format!(
                        "HPA {name} has no cpu resource metric to override the target of"
                    ))
                })?;
            cpu.target.average_utilization = Some(target);
        }
        let min = spec.min_replicas.unwrap_or(1);
        if min < 1 || spec.max_replicas < min {
            return Err(ClusterError::Invalid(format!(
                "HPA {name}: replicas must satisfy 1 <= min ({min}) <= max ({})",
                spec.max_replicas
            )));
        }
        Ok(hpa)
    }
}

/// The objects of one deployment of the workload, ready to be applied in order.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub target: Target,
    pub namespace: Namespace,
    pub deployment: Deployment,
    pub service: Service,
    pub hpa: HorizontalPodAutoscaler,
}

impl Prepared {
    /// Prepares `manifests` for `namespace`, running `image`, with the HPA changed by
    /// `overrides`.
    pub fn new(
        manifests: &Manifests,
        namespace: &str,
        image: &str,
        overrides: &HpaOverrides,
    ) -> Result<Self, ClusterError> {
        let target = Target::from_manifests(manifests, namespace)?;
        Ok(Prepared {
            namespace: namespace_object(namespace),
            deployment: deployment_for(&manifests.deployment, namespace, image)?,
            service: placed(manifests.service.clone(), namespace),
            hpa: placed(overrides.apply_to(&manifests.hpa)?, namespace),
            target,
        })
    }
}

/// The dedicated namespace, labeled for Pod Security Admission.
pub fn namespace_object(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(
                POD_SECURITY_LABELS
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .chain([(
                        "app.kubernetes.io/managed-by".to_string(),
                        "scaleproof".to_string(),
                    )])
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The Deployment of `k8s/` in `namespace`, its first container running `image`.
///
/// `spec.replicas` is dropped: the HPA owns the replica count, and a re-apply that
/// carried `replicas: 1` would scale a busy workload back down (new Deployments
/// default to 1 replica anyway).
pub fn deployment_for(
    deployment: &Deployment,
    namespace: &str,
    image: &str,
) -> Result<Deployment, ClusterError> {
    let mut deployment = placed(deployment.clone(), namespace);
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let spec = deployment
        .spec
        .as_mut()
        .ok_or_else(|| ClusterError::Invalid(format!("Deployment {name} has no spec")))?;
    spec.replicas = None;
    let container = spec
        .template
        .spec
        .as_mut()
        .and_then(|pod| pod.containers.first_mut())
        .ok_or_else(|| ClusterError::Invalid(format!("Deployment {name} has no container")))?;
    container.image = Some(image.to_string());
    Ok(deployment)
}

/// `object` with `metadata.namespace` set, so the applied body names where it goes.
fn placed<K: kube::Resource>(mut object: K, namespace: &str) -> K {
    object.meta_mut().namespace = Some(namespace.to_string());
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifests() -> Manifests {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s");
        Manifests::load(&dir).expect("k8s/ loads")
    }

    #[test]
    fn overrides_change_only_what_they_name() {
        let m = manifests();
        let hpa = HpaOverrides {
            max_replicas: Some(1),
            ..HpaOverrides::default()
        }
        .apply_to(&m.hpa)
        .expect("valid override");
        let spec = hpa.spec.expect("spec");
        assert_eq!(spec.max_replicas, 1);
        assert_eq!(spec.min_replicas, Some(1));
        let cpu = spec.metrics.expect("metrics")[0]
            .resource
            .clone()
            .expect("cpu");
        assert_eq!(cpu.target.average_utilization, Some(50));
    }

    #[test]
    fn target_override_rewrites_the_cpu_metric_and_bad_bounds_are_refused() {
        let m = manifests();
        let hpa = HpaOverrides {
            target_cpu_pct: Some(70),
            ..HpaOverrides::default()
        }
        .apply_to(&m.hpa)
        .expect("valid override");
        let cpu = hpa.spec.expect("spec").metrics.expect("metrics")[0]
            .resource
            .clone()
            .expect("cpu");
        assert_eq!(cpu.target.average_utilization, Some(70));

        let err = HpaOverrides {
            min_replicas: Some(3),
            max_replicas: Some(2),
            ..HpaOverrides::default()
        }
        .apply_to(&m.hpa)
        .expect_err("min > max");
        assert!(err.to_string().contains("min (3) <= max (2)"), "{err}");
    }

    #[test]
    fn prepared_deployment_runs_the_image_in_the_namespace_without_replicas() {
        let p = Prepared::new(
            &manifests(),
            "sp",
            "iris-server:abc123",
            &HpaOverrides::default(),
        )
        .expect("prepared");
        assert_eq!(p.deployment.metadata.namespace.as_deref(), Some("sp"));
        let spec = p.deployment.spec.expect("spec");
        assert_eq!(spec.replicas, None);
        let pod = spec.template.spec.expect("pod spec");
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("iris-server:abc123")
        );
        assert_eq!(p.target.selector, "app.kubernetes.io/name=iris-classifier");
        let labels = p.namespace.metadata.labels.expect("labels");
        assert_eq!(
            labels
                .get("pod-security.kubernetes.io/enforce")
                .map(String::as_str),
            Some("restricted")
        );
    }
}
