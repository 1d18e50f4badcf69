//! The objects scaleproof applies, derived from `k8s/` without touching a cluster.
//!
//! Pure functions, so that a dry run prints exactly what a real run applies.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::ClusterError;
use crate::manifests::{HpaOverrides, Manifests};

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
    /// Prepares `manifests` for `namespace`, its service container (`container`, else
    /// the first) running `image`, with the HPA changed by `overrides`.
    pub fn new(
        manifests: &Manifests,
        namespace: &str,
        image: &str,
        container: Option<&str>,
        overrides: &HpaOverrides,
    ) -> Result<Self, ClusterError> {
        let target = Target::from_manifests(manifests, namespace)?;
        Ok(Prepared {
            namespace: namespace_object(namespace),
            deployment: deployment_for(&manifests.deployment, namespace, image, container)?,
            service: placed(manifests.service.clone(), namespace),
            hpa: placed(overrides.apply_to(&manifests.hpa)?, namespace),
            target,
        })
    }

    /// The same workload (image and environment as prepared) in `namespace`, with
    /// `hpa` (the manifests' HPA with a scenario's overrides) and the Service on
    /// `node_port`: a scenario's fresh namespace ([`super::fresh`]).
    pub fn in_namespace(
        &self,
        namespace: &str,
        hpa: &HorizontalPodAutoscaler,
        node_port: u16,
    ) -> Prepared {
        Prepared {
            target: Target {
                namespace: namespace.to_string(),
                ..self.target.clone()
            },
            namespace: namespace_object(namespace),
            deployment: placed(self.deployment.clone(), namespace),
            service: placed(self.service.clone(), namespace),
            hpa: placed(hpa.clone(), namespace),
        }
        .with_node_port(node_port)
    }

    /// The same objects with the Service's first node port set to `node_port` (for
    /// a namespace beside others deployed from the same manifests: node ports are
    /// the node's, one Service each).
    pub fn with_node_port(mut self, node_port: u16) -> Self {
        if let Some(port) = self
            .service
            .spec
            .as_mut()
            .and_then(|s| s.ports.as_mut())
            .and_then(|ports| ports.first_mut())
        {
            port.node_port = Some(i32::from(node_port));
        }
        self
    }

    /// The Service's first node port, as the manifest states it (`None`: it leaves
    /// the choice to the API server, or is no NodePort Service).
    pub fn node_port(&self) -> Option<u16> {
        self.service
            .spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .find_map(|p| p.node_port)
            .and_then(|p| u16::try_from(p).ok())
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

/// The Deployment of `k8s/` in `namespace`, its service container (`container`, else
/// the first) running `image`.
///
/// `spec.replicas` is dropped: the HPA owns the replica count, and a re-apply that
/// carried `replicas: 1` would scale a busy workload back down (new Deployments
/// default to 1 replica anyway).
pub fn deployment_for(
    deployment: &Deployment,
    namespace: &str,
    image: &str,
    container: Option<&str>,
) -> Result<Deployment, ClusterError> {
    let mut deployment = placed(deployment.clone(), namespace);
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let spec = deployment
        .spec
        .as_mut()
        .ok_or_else(|| ClusterError::Invalid(format!("Deployment {name} has no spec")))?;
    spec.replicas = None;
    let containers = spec
        .template
        .spec
        .as_mut()
        .map(|pod| &mut pod.containers)
        .ok_or_else(|| ClusterError::Invalid(format!("Deployment {name} has no pod spec")))?;
    let names: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
    let service = match container {
        Some(wanted) => containers
            .iter_mut()
            .find(|c| c.name == wanted)
            .ok_or_else(|| {
                ClusterError::Invalid(format!(
                    "[backend.kind.image] container = {wanted:?}: Deployment {name} has no such \
                 container (it has: {})",
                    names.join(", ")
                ))
            })?,
        None => containers
            .first_mut()
            .ok_or_else(|| ClusterError::Invalid(format!("Deployment {name} has no container")))?,
    };
    service.image = Some(image.to_string());
    Ok(deployment)
}

/// Sets (or replaces) env vars of the Deployment's service container (`container`,
/// else the first): the per-backend settings of the stress config, such as the cost
/// knob, without editing k8s/. A named container that does not exist was refused by
/// [`deployment_for`] already.
pub fn set_env(
    deployment: &mut Deployment,
    container: Option<&str>,
    env: &BTreeMap<String, String>,
) {
    let Some(container) = deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .and_then(|pod| match container {
            Some(wanted) => pod.containers.iter_mut().find(|c| c.name == wanted),
            None => pod.containers.first_mut(),
        })
    else {
        return;
    };
    let vars = container.env.get_or_insert_with(Vec::new);
    for (name, value) in env {
        vars.retain(|v| &v.name != name);
        vars.push(k8s_openapi::api::core::v1::EnvVar {
            name: name.clone(),
            value: Some(value.clone()),
            value_from: None,
        });
    }
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

    /// `[backend.kind.image] container`: in a pod with a sidecar, the named container
    /// gets the image and the env; the sidecar keeps its own. A name the Deployment
    /// does not have is refused with the names it has.
    #[test]
    fn the_named_container_gets_the_image_and_env_and_a_wrong_name_is_refused() {
        let mut manifests = manifests();
        let pod = manifests
            .deployment
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .expect("pod spec");
        let mut sidecar = pod.containers[0].clone();
        sidecar.name = "log-shipper".into();
        sidecar.image = Some("shipper:1.0".into());
        sidecar.env = None;
        pod.containers.insert(0, sidecar);

        let mut p = Prepared::new(
            &manifests,
            "sp",
            "iris-server:abc123",
            Some("iris-server"),
            &HpaOverrides::default(),
        )
        .expect("prepared");
        let env = BTreeMap::from([("IRIS_CPU_COST_MS".to_string(), "10".to_string())]);
        set_env(&mut p.deployment, Some("iris-server"), &env);
        let pod = p
            .deployment
            .spec
            .and_then(|s| s.template.spec)
            .expect("pod");
        let (shipper, service) = (&pod.containers[0], &pod.containers[1]);
        assert_eq!(shipper.image.as_deref(), Some("shipper:1.0"));
        assert!(shipper.env.is_none(), "the sidecar gets no env");
        assert_eq!(service.image.as_deref(), Some("iris-server:abc123"));
        assert!(
            service
                .env
                .iter()
                .flatten()
                .any(|v| v.name == "IRIS_CPU_COST_MS" && v.value.as_deref() == Some("10"))
        );

        let err = Prepared::new(
            &manifests,
            "sp",
            "iris-server:abc123",
            Some("app"),
            &HpaOverrides::default(),
        )
        .expect_err("no container app");
        assert!(
            err.to_string().contains(
                "[backend.kind.image] container = \"app\": Deployment iris-classifier has no \
                 such container (it has: log-shipper, iris-server)"
            ),
            "{err}"
        );
    }

    #[test]
    fn env_overrides_replace_or_add_container_env() {
        let mut d = manifests().deployment;
        let env = BTreeMap::from([
            ("IRIS_CPU_COST_MS".to_string(), "10".to_string()),
            ("EXTRA".to_string(), "1".to_string()),
        ]);
        set_env(&mut d, None, &env);
        let vars = d.spec.unwrap().template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        let cost: Vec<_> = vars
            .iter()
            .filter(|v| v.name == "IRIS_CPU_COST_MS")
            .collect();
        assert_eq!(cost.len(), 1);
        assert_eq!(cost[0].value.as_deref(), Some("10"));
        assert!(vars.iter().any(|v| v.name == "EXTRA"));
    }

    #[test]
    fn prepared_deployment_runs_the_image_in_the_namespace_without_replicas() {
        let p = Prepared::new(
            &manifests(),
            "sp",
            "iris-server:abc123",
            None,
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
