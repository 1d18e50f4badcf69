//! The diagnostics bundle: what a person debugging a failed run would ask the
//! cluster for, written as files so CI can upload them as one artifact.
//!
//! Every part is best-effort: a missing HPA must not hide the pod logs that explain
//! why it is missing. `index.txt` lists each part and, when it failed, why.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use k8s_metrics::v1beta1::PodMetrics;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};
use serde::Serialize;

use super::objects::Target;
use super::rollout::recent_events;
use super::{ClusterError, describe_kube_error, metrics_server};

/// Lines of each container log kept (the end, where failures are).
const LOG_TAIL_LINES: i64 = 5000;

/// What the bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleReport {
    pub dir: PathBuf,
    /// Each part (a file name relative to `dir`) and why it failed, if it did.
    pub parts: Vec<(String, Result<(), String>)>,
}

impl BundleReport {
    /// The parts that could not be written.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &str)> {
        self.parts
            .iter()
            .filter_map(|(name, outcome)| match outcome {
                Ok(()) => None,
                Err(why) => Some((name.as_str(), why.as_str())),
            })
    }
}

/// Writes the bundle for `target` into `dir` (created if needed): the HPA with its
/// conditions, the Deployment and its pods with status, the namespace's events, the
/// logs of every app pod and of metrics-server, and the pods' metrics.
///
/// Fails only when `dir` or `index.txt` cannot be written; every other problem is
/// recorded in the index.
pub async fn write_bundle(
    client: &Client,
    target: &Target,
    dir: &Path,
) -> Result<BundleReport, ClusterError> {
    tokio::fs::create_dir_all(dir.join("logs"))
        .await
        .map_err(|e| ClusterError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
    let ns = target.namespace.as_str();
    let mut bundle = Bundle {
        dir: dir.to_path_buf(),
        parts: Vec::new(),
    };

    let hpa = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns)
        .get(&target.hpa)
        .await;
    bundle.yaml("hpa.yaml", hpa).await;
    let deployment = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(&target.deployment)
        .await;
    bundle.yaml("deployment.yaml", deployment).await;

    let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = pods_api
        .list(&ListParams::default().labels(&target.selector))
        .await
        .map(|l| l.items);
    bundle
        .yaml(
            "pods.yaml",
            pods.as_ref().map(Clone::clone).map_err(copy_error),
        )
        .await;
    if let Ok(pods) = &pods {
        bundle.logs(&pods_api, pods, "").await;
    }

    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| recent_events(l.items, usize::MAX).join("\n") + "\n");
    bundle.text("events.txt", events).await;

    let system_pods: Api<Pod> = Api::namespaced(client.clone(), metrics_server::NAMESPACE);
    match system_pods
        .list(&ListParams::default().labels(metrics_server::POD_SELECTOR))
        .await
    {
        Ok(list) => {
            let prefix = format!("{}.", metrics_server::NAMESPACE);
            bundle.logs(&system_pods, &list.items, &prefix).await;
        }
        Err(e) => bundle.record("logs/metrics-server", Err(describe_kube_error(&e))),
    }

    let metrics = Api::<PodMetrics>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&target.selector))
        .await
        .map(|l| l.items);
    bundle.yaml("pod-metrics.yaml", metrics).await;

    let mut index = String::new();
    for (name, outcome) in &bundle.parts {
        match outcome {
            Ok(()) => {
                let _ = writeln!(index, "ok      {name}");
            }
            Err(why) => {
                let _ = writeln!(index, "FAILED  {name}: {why}");
            }
        }
    }
    let index_path = dir.join("index.txt");
    tokio::fs::write(&index_path, index).await.map_err(|e| {
        ClusterError::Invalid(format!("cannot write {}: {e}", index_path.display()))
    })?;
    Ok(BundleReport {
        dir: bundle.dir,
        parts: bundle.parts,
    })
}

/// kube::Error is not Clone; the bundle needs the pod list twice (YAML and logs).
fn copy_error(error: &kube::Error) -> kube::Error {
    match error {
        kube::Error::Api(status) => kube::Error::Api(status.clone()),
        other => kube::Error::Service(other.to_string().into()),
    }
}

struct Bundle {
    dir: PathBuf,
    parts: Vec<(String, Result<(), String>)>,
}

impl Bundle {
    fn record(&mut self, name: &str, outcome: Result<(), String>) {
        self.parts.push((name.to_string(), outcome));
    }

    async fn write(&mut self, name: &str, content: Result<String, String>) {
        let outcome = match content {
            Ok(text) => tokio::fs::write(self.dir.join(name), text)
                .await
                .map_err(|e| format!("write failed: {e}")),
            Err(why) => Err(why),
        };
        self.record(name, outcome);
    }

    async fn text(&mut self, name: &str, content: kube::Result<String>) {
        self.write(name, content.map_err(|e| describe_kube_error(&e)))
            .await;
    }

    /// Writes `object` (or a list of them) as YAML, without `managedFields` (long,
    /// and no help here).
    async fn yaml<T: Serialize>(&mut self, name: &str, object: kube::Result<T>) {
        let content = object
            .map_err(|e| describe_kube_error(&e))
            .and_then(|o| serde_json::to_value(&o).map_err(|e| format!("cannot render: {e}")))
            .and_then(|mut value| {
                match &mut value {
                    serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
                    one => strip(one),
                }
                serde_norway::to_string(&value).map_err(|e| format!("cannot render YAML: {e}"))
            });
        self.write(name, content).await;
    }

    /// Logs of every container of `pods`, and of the previous run of a restarted one
    /// (a crash-looping container's useful log is the previous one).
    async fn logs(&mut self, api: &Api<Pod>, pods: &[Pod], prefix: &str) {
        for pod in pods {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref());
            for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                let restarted = statuses
                    .into_iter()
                    .flatten()
                    .any(|s| s.name == container.name && s.restart_count > 0);
                for previous in [false, true] {
                    if previous && !restarted {
                        continue;
                    }
                    let params = LogParams {
                        container: Some(container.name.clone()),
                        tail_lines: Some(LOG_TAIL_LINES),
                        previous,
                        ..LogParams::default()
                    };
                    let suffix = if previous { ".previous" } else { "" };
                    let file = format!("logs/{prefix}{pod_name}.{}{suffix}.log", container.name);
                    let log = api.logs(&pod_name, &params).await;
                    self.text(&file, log).await;
                }
            }
        }
    }
}

/// Drops `metadata.managedFields` before an object is written.
fn strip(object: &mut serde_json::Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("managedFields");
    }
}
