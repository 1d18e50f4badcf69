//! The Kubernetes manifests in `k8s/`, parsed into their k8s-openapi types.
//!
//! `k8s/` is the single source of truth: the kind backend applies these objects,
//! the local backend reads the container's command line, CPU limit and probes from
//! them, and the HPA port reads its spec from them. Parsing is strict: a key the
//! typed object does not know (a misspelling such as `imagePullPolcy`) is an error,
//! because serde would otherwise drop it silently and the cluster would never see it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Container, Service};
use scaleproof_sim::api::apply::first_lost_key;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why `k8s/` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML: {source}")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{path}: {kind} {name}: {message}")]
    Invalid {
        path: PathBuf,
        kind: String,
        name: String,
        message: String,
    },
    #[error("{path}: {kind} {name}: unknown field `{field}` (misspelled, or not part of {kind})")]
    UnknownField {
        path: PathBuf,
        kind: String,
        name: String,
        field: String,
    },
    #[error("{path}: document without `kind`")]
    MissingKind { path: PathBuf },
    #[error(
        "{path}: unsupported kind {kind} (expected Deployment, Service or HorizontalPodAutoscaler)"
    )]
    UnsupportedKind { path: PathBuf, kind: String },
    #[error("{dir}: no {kind} found")]
    Missing { dir: PathBuf, kind: &'static str },
    #[error("{dir}: more than one {kind} ({first} and {second})")]
    Duplicate {
        dir: PathBuf,
        kind: &'static str,
        first: String,
        second: String,
    },
    #[error("{kind} {name}: {message}")]
    Semantics {
        kind: &'static str,
        name: String,
        message: String,
    },
}

/// The objects scaleproof deploys: one Deployment, its Service and its HPA.
#[derive(Debug, Clone)]
pub struct Manifests {
    pub dir: PathBuf,
    pub deployment: Deployment,
    pub service: Service,
    pub hpa: HorizontalPodAutoscaler,
}

impl Manifests {
    /// Reads every `*.yaml` / `*.yml` in `dir`. Files whose `apiVersion` belongs to
    /// kind (`kind.x-k8s.io/...`, the cluster config) are not Kubernetes objects and
    /// are skipped.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| ManifestError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();

        let mut deployment: Option<(String, Deployment)> = None;
        let mut service: Option<(String, Service)> = None;
        let mut hpa: Option<(String, HorizontalPodAutoscaler)> = None;
        for path in &files {
            let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
                path: path.clone(),
                source,
            })?;
            for document in serde_norway::Deserializer::from_str(&text) {
                let raw = serde_norway::Value::deserialize(document).map_err(|source| {
                    ManifestError::Yaml {
                        path: path.clone(),
                        source,
                    }
                })?;
                if raw.is_null() {
                    continue; // an empty document, e.g. after a trailing `---`
                }
                let raw: Value =
                    serde_json::to_value(&raw).map_err(|e| ManifestError::Invalid {
                        path: path.clone(),
                        kind: "?".into(),
                        name: "?".into(),
                        message: e.to_string(),
                    })?;
                let api_version = raw.get("apiVersion").and_then(Value::as_str).unwrap_or("");
                if api_version.starts_with("kind.x-k8s.io/") {
                    continue;
                }
                let kind = raw
                    .get("kind")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ManifestError::MissingKind { path: path.clone() })?;
                match kind {
                    "Deployment" => put(dir, &mut deployment, "Deployment", strict(path, raw)?)?,
                    "Service" => put(dir, &mut service, "Service", strict(path, raw)?)?,
                    "HorizontalPodAutoscaler" => {
                        put(dir, &mut hpa, "HorizontalPodAutoscaler", strict(path, raw)?)?
                    }
                    other => {
                        return Err(ManifestError::UnsupportedKind {
                            path: path.clone(),
                            kind: other.to_string(),
                        });
                    }
                }
            }
        }
        let missing = |kind| ManifestError::Missing {
            dir: dir.to_path_buf(),
            kind,
        };
        let manifests = Manifests {
            dir: dir.to_path_buf(),
            deployment: deployment.ok_or_else(|| missing("Deployment"))?.1,
            service: service.ok_or_else(|| missing("Service"))?.1,
            hpa: hpa.ok_or_else(|| missing("HorizontalPodAutoscaler"))?.1,
        };
        manifests.workload()?;
        manifests.service_reaches_the_pods()?;
        Ok(manifests)
    }

    /// The gate sends its load to the Service: one whose selector matches no label
    /// set of the Deployment's pods has no endpoints, and every request would be
    /// refused (kube-proxy rejects connections to a Service without endpoints). The
    /// API server accepts such a Service; the gate names the mismatch before it runs.
    fn service_reaches_the_pods(&self) -> Result<(), ManifestError> {
        let service = self.service.metadata.name.clone().unwrap_or_default();
        let selector = self
            .service
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let labels = self
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let unmatched: Vec<String> = selector
            .iter()
            .filter(|(k, v)| labels.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if selector.is_empty() || !unmatched.is_empty() {
            let deployment = self.deployment.metadata.name.clone().unwrap_or_default();
            return Err(ManifestError::Semantics {
                kind: "Service",
                name: service,
                message: format!(
                    "selects no pod of Deployment {deployment} ({}; its pods are labeled {}): \
                     the load sent to the Service would reach nothing",
                    if selector.is_empty() {
                        "no selector".to_string()
                    } else {
                        format!("no pod carries {}", unmatched.join(", "))
                    },
                    labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        Ok(())
    }

    /// The facts about the workload that both backends need, checked for presence.
    pub fn workload(&self) -> Result<Workload, ManifestError> {
        let name = self.deployment.metadata.name.clone().unwrap_or_default();
        let bad = |message: &str| ManifestError::Semantics {
            kind: "Deployment",
            name: name.clone(),
            message: message.to_string(),
        };
        let container = self
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.first())
            .ok_or_else(|| bad("no container in spec.template.spec.containers"))?;
        let resources = container
            .resources
            .as_ref()
            .ok_or_else(|| bad("container has no resources (the HPA needs a CPU request)"))?;
        let cpu = |map: &Option<
            BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        >,
                   what: &str| {
            let q = map
                .as_ref()
                .and_then(|m| m.get("cpu"))
                .ok_or_else(|| bad(&format!("container has no cpu {what}")))?;
            parse_cpu_millicores(&q.0)
                .ok_or_else(|| bad(&format!("cpu {what} `{}` is not a CPU quantity", q.0)))
        };
        let has =
            |map: &Option<BTreeMap<String, _>>| map.as_ref().is_some_and(|m| m.contains_key("cpu"));
        if !has(&resources.requests) && !has(&resources.limits) {
            return Err(bad(
                "container has no cpu request or limit: the HPA cannot compute CPU \
                 utilization without a request (it would report FailedGetResourceMetric: \
                 missing request for cpu)",
            ));
        }
        let cpu_limit_millicores = cpu(&resources.limits, "limit")?;
        // The API server gives a Pod whose container has a limit but no request the
        // limit as its request (`pkg/apis/core/v1/defaults.go`, `SetDefaults_Pod`),
        // and the HPA computes utilization against that: so does the harness.
        let has_request = resources
            .requests
            .as_ref()
            .is_some_and(|r| r.contains_key("cpu"));
        let cpu_request_millicores = if has_request {
            cpu(&resources.requests, "request")?
        } else {
            cpu_limit_millicores
        };
        let port = container
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .map(|p| p.container_port)
            .ok_or_else(|| bad("container declares no port"))?;
        let port = u16::try_from(port)
            .map_err(|_| bad(&format!("container port {port} is out of range")))?;
        let readiness = container
            .readiness_probe
            .as_ref()
            .ok_or_else(|| bad("container has no readinessProbe"))?;
        let readiness_path = readiness
            .http_get
            .as_ref()
            .and_then(|h| h.path.clone())
            .ok_or_else(|| bad("readinessProbe is not an httpGet with a path"))?;
        let readiness_period_s = readiness.period_seconds.unwrap_or(10).max(1) as u64;
        Ok(Workload {
            deployment_name: name.clone(),
            container: container.clone(),
            cpu_request_millicores,
            cpu_limit_millicores,
            port,
            readiness_path,
            readiness_period_s,
            env: env_map(container),
        })
    }
}

/// Per-scenario changes to the HPA of `k8s/hpa.yaml` (for example `maxReplicas: 1`
/// to show what happens when scaling is not allowed). `None` keeps the manifest's
/// value. Both backends apply them to the same typed object before use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HpaOverrides {
    pub min_replicas: Option<i32>,
    pub max_replicas: Option<i32>,
    /// Target average CPU utilization, percent of the request.
    pub target_cpu_pct: Option<i32>,
    /// Laid over the manifest's `spec.behavior`, field by field
    /// (`crate::scenario::behavior::overlay`).
    pub behavior: Option<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior>,
}

impl HpaOverrides {
    pub fn is_empty(&self) -> bool {
        self == &HpaOverrides::default()
    }

    /// `hpa` with the overrides applied. A CPU target override replaces the
    /// `averageUtilization` of the cpu resource metric; it is an error when the HPA
    /// has no such metric, since the override would silently do nothing.
    pub fn apply_to(
        &self,
        hpa: &HorizontalPodAutoscaler,
    ) -> Result<HorizontalPodAutoscaler, ManifestError> {
        let mut hpa = hpa.clone();
        let name = hpa.metadata.name.clone().unwrap_or_default();
        let bad = |message: String| ManifestError::Semantics {
            kind: "HorizontalPodAutoscaler",
            name: name.clone(),
            message,
        };
        let spec = hpa.spec.as_mut().ok_or_else(|| bad("has no spec".into()))?;
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
                .ok_or_else(
                    || bad("has no cpu resource metric to override the target of".into()),
                )?;
            cpu.target.average_utilization = Some(target);
        }
        if let Some(behavior) = &self.behavior {
            let merged = crate::scenario::behavior::overlay(spec.behavior.as_ref(), behavior);
            let errors = crate::scenario::behavior::validate(&merged);
            if !errors.is_empty() {
                return Err(bad(format!("spec.behavior: {}", errors.join("; "))));
            }
            spec.behavior = Some(merged);
        }
        let min = spec.min_replicas.unwrap_or(1);
        if min < 1 || spec.max_replicas < min {
            return Err(bad(format!(
                "replicas must satisfy 1 <= min ({min}) <= max ({})",
                spec.max_replicas
            )));
        }
        Ok(hpa)
    }
}

/// What a replica of the Deployment needs, extracted from its first container.
#[derive(Debug, Clone)]
pub struct Workload {
    pub deployment_name: String,
    pub container: Container,
    pub cpu_request_millicores: u64,
    pub cpu_limit_millicores: u64,
    pub port: u16,
    pub readiness_path: String,
    pub readiness_period_s: u64,
    /// Literal `env` entries (`valueFrom` entries are not resolvable outside a cluster).
    pub env: BTreeMap<String, String>,
}

fn env_map(container: &Container) -> BTreeMap<String, String> {
    container
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
        .collect()
}

fn put<T>(
    dir: &Path,
    slot: &mut Option<(String, T)>,
    kind: &'static str,
    found: (String, T),
) -> Result<(), ManifestError> {
    if let Some((first, _)) = slot {
        return Err(ManifestError::Duplicate {
            dir: dir.to_path_buf(),
            kind,
            first: first.clone(),
            second: found.0,
        });
    }
    *slot = Some(found);
    Ok(())
}

/// Deserializes `raw` into `T` and proves nothing was dropped on the way: every key
/// of the YAML must come back, with the same value, when the typed object is
/// serialized again.
fn strict<T>(path: &Path, raw: Value) -> Result<(String, T), ManifestError>
where
    T: DeserializeOwned + serde::Serialize,
{
    let kind = raw
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let name = raw
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let typed: T = serde_json::from_value(raw.clone()).map_err(|e| ManifestError::Invalid {
        path: path.to_path_buf(),
        kind: kind.clone(),
        name: name.clone(),
        message: e.to_string(),
    })?;
    let again = serde_json::to_value(&typed).map_err(|e| ManifestError::Invalid {
        path: path.to_path_buf(),
        kind: kind.clone(),
        name: name.clone(),
        message: e.to_string(),
    })?;
    if let Some(field) = first_lost_key(&raw, &again, String::new()) {
        return Err(ManifestError::UnknownField {
            path: path.to_path_buf(),
            kind,
            name,
            field,
        });
    }
    Ok((name, typed))
}

/// The HPA's CPU utilization target in percent (`metrics[].resource` named `cpu`,
/// `target.averageUtilization`), if it has one.
pub fn cpu_utilization_target(hpa: &HorizontalPodAutoscaler) -> Option<i32> {
    hpa.spec
        .as_ref()?
        .metrics
        .iter()
        .flatten()
        .filter_map(|m| m.resource.as_ref())
        .find(|r| r.name == "cpu")
        .and_then(|r| r.target.average_utilization)
}

/// Parses a Kubernetes CPU quantity (`100m`, `0.5`, `2`) into millicores, rounded up
/// like Kubernetes' `MilliValue()` (the HPA port's parser, so both read alike).
pub fn parse_cpu_millicores(quantity: &str) -> Option<u64> {
    scaleproof_hpa::parse_milli(quantity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(parse_cpu_millicores("100m"), Some(100));
        assert_eq!(parse_cpu_millicores("0.2"), Some(200));
        assert_eq!(parse_cpu_millicores("2"), Some(2000));
        assert_eq!(parse_cpu_millicores("lots"), None);
        assert_eq!(parse_cpu_millicores("-1"), None);
    }

    #[test]
    fn lost_key_is_named_with_its_path() {
        let raw = serde_json::json!({"spec": {"containers": [{"name": "a", "imagePullPolcy": "Always"}]}});
        let typed = serde_json::json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            first_lost_key(&raw, &typed, String::new()).as_deref(),
            Some("spec.containers[0].imagePullPolcy")
        );
    }
}
