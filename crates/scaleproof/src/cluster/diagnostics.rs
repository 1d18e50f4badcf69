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

use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;

use super::control_plane::{self, CONTROLLER_MANAGER_SELECTOR};
use super::evidence::{decisive_line, describe, last_seen, timed_events};
use super::objects::Target;
use super::{ClusterError, describe_kube_error, describe_metrics_api_error, metrics_server};

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
#[tracing::instrument(level = "debug", name = "cluster::diagnostics::write_bundle", skip_all)]
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
        .map(|l| timed_events(l.items).join("\n") + "\n");
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

    // The metrics API is polled, not retried: its error has no retry hint.
    match Api::<PodMetrics>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&target.selector))
        .await
    {
        Ok(list) => bundle.yaml("pod-metrics.yaml", Ok(list.items)).await,
        Err(e) => {
            bundle
                .write("pod-metrics.yaml", Err(describe_metrics_api_error(&e)))
                .await
        }
    }

    write_index(&bundle).await?;
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
        self.logs_with_text(api, pods, prefix).await;
    }

    /// [`Bundle::logs`], returning each log written as (file name, text).
    async fn logs_with_text(
        &mut self,
        api: &Api<Pod>,
        pods: &[Pod],
        prefix: &str,
    ) -> Vec<(String, String)> {
        let mut texts = Vec::new();
        for pod in pods {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref());
            for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                let restarted = statuses.into_iter().flatten().any(|s| {
                    s.name == container.name
                        && (s.restart_count > 0
                            || s.last_state
                                .as_ref()
                                .is_some_and(|l| l.terminated.is_some()))
                });
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
                    if let Ok(text) = &log {
                        texts.push((file.clone(), text.clone()));
                    }
                    self.text(&file, log).await;
                }
            }
        }
        texts
    }
}

/// Drops `metadata.managedFields` before an object is written.
fn strip(object: &mut serde_json::Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("managedFields");
    }
}

/// Which part of the cluster a failed setup step was waiting on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupFocus {
    /// A Deployment that did not roll out (metrics-server's or the workload's).
    Deployment {
        namespace: String,
        name: String,
        selector: String,
    },
    /// The metrics pipeline: metrics-server and its APIService.
    MetricsPipeline,
    /// The controller-manager (its flags).
    ControlPlane,
    /// Something else after the cluster existed (loading the image, installing).
    Cluster,
}

impl SetupFocus {
    /// The metrics-server Deployment, as the upstream manifest installs it.
    pub fn metrics_server() -> Self {
        SetupFocus::Deployment {
            namespace: metrics_server::NAMESPACE.into(),
            name: metrics_server::DEPLOYMENT.into(),
            selector: metrics_server::POD_SELECTOR.into(),
        }
    }
}

/// A line that decides a diagnosis, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub quote: String,
    /// A file of the bundle, or what the line was read from.
    pub source: String,
}

/// What the setup bundle says about a failed setup step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupDiagnosis {
    pub dir: PathBuf,
    /// The most likely cause, in a sentence.
    pub likely_cause: Option<String>,
    /// The log line or event that shows it.
    pub evidence: Option<Evidence>,
    /// Parts that could not be collected.
    pub gaps: Vec<String>,
}

impl std::fmt::Display for SetupDiagnosis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(cause) = &self.likely_cause {
            writeln!(f, "likely cause: {cause}")?;
        }
        if let Some(evidence) = &self.evidence {
            writeln!(f, "evidence ({}): {}", evidence.source, evidence.quote)?;
        }
        write!(f, "diagnostics: {}", self.dir.display())
    }
}

/// Writes what a person needs to understand a failed setup step into `dir`, before
/// anything is torn down: the pods of the Deployment in focus with their status
/// (phase, conditions, container state and last state), the logs of their current
/// **and previous** containers, the namespace's events (and the workload's), the
/// metrics APIService's status and the controller-manager's flags. Best-effort, like
/// [`write_bundle`]; `diagnosis.txt` names the likely cause and the line that shows it.
#[tracing::instrument(
    level = "debug",
    name = "cluster::diagnostics::write_setup_bundle",
    skip_all
)]
pub async fn write_setup_bundle(
    client: &Client,
    focus: &SetupFocus,
    workload: &Target,
    dir: &Path,
) -> Result<SetupDiagnosis, ClusterError> {
    tokio::fs::create_dir_all(dir.join("logs"))
        .await
        .map_err(|e| ClusterError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
    let mut bundle = Bundle {
        dir: dir.to_path_buf(),
        parts: Vec::new(),
    };
    let deployment = match focus {
        SetupFocus::Deployment {
            namespace,
            name,
            selector,
        } => Some((namespace.clone(), name.clone(), selector.clone())),
        SetupFocus::MetricsPipeline => Some((
            metrics_server::NAMESPACE.to_string(),
            metrics_server::DEPLOYMENT.to_string(),
            metrics_server::POD_SELECTOR.to_string(),
        )),
        SetupFocus::ControlPlane | SetupFocus::Cluster => None,
    };

    let mut pods: Vec<Pod> = Vec::new();
    let mut logs: Vec<(String, String)> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut namespaces = vec![workload.namespace.clone()];
    if let Some((ns, name, selector)) = &deployment {
        namespaces.insert(0, ns.clone());
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        match api.list(&ListParams::default().labels(selector)).await {
            Ok(list) => {
                pods = list.items;
                bundle
                    .yaml(&format!("{ns}.{name}.pods.yaml"), Ok(pods.clone()))
                    .await;
                logs = bundle.logs_with_text(&api, &pods, &format!("{ns}.")).await;
            }
            Err(e) => bundle.record(
                &format!("{ns}.{name}.pods.yaml"),
                Err(describe_kube_error(&e)),
            ),
        }
    }
    namespaces.dedup();
    if matches!(focus, SetupFocus::Cluster | SetupFocus::ControlPlane) {
        namespaces.insert(0, "kube-system".to_string());
        namespaces.dedup();
    }
    for ns in &namespaces {
        match Api::<Event>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
        {
            Ok(list) => {
                let text = timed_events(list.items.clone()).join("\n") + "\n";
                bundle.write(&format!("events.{ns}.txt"), Ok(text)).await;
                events.extend(list.items);
            }
            Err(e) => bundle.record(&format!("events.{ns}.txt"), Err(describe_kube_error(&e))),
        }
    }

    let api_service = Api::<APIService>::all(client.clone())
        .get(metrics_server::API_SERVICE)
        .await;
    let unavailable = api_service
        .as_ref()
        .ok()
        .and_then(metrics_server::unavailable_reason);
    bundle.yaml("apiservice.yaml", api_service).await;

    let flags = control_plane::find_controller_manager(
        client,
        control_plane::MirrorPodWait {
            timeout: std::time::Duration::ZERO,
            poll: std::time::Duration::ZERO,
        },
    )
    .await
    .map(|pod| control_plane::flags(&pod).join("\n") + "\n")
    .map_err(|e| format!("no pod labeled {CONTROLLER_MANAGER_SELECTOR}: {e}"));
    bundle.write("controller-manager-flags.txt", flags).await;

    let (likely_cause, evidence) = diagnose_setup(focus, &pods, &logs, &events, unavailable);
    let mut diagnosis = SetupDiagnosis {
        dir: dir.to_path_buf(),
        likely_cause,
        evidence,
        gaps: Vec::new(),
    };
    let mut text = String::new();
    if let Some(cause) = &diagnosis.likely_cause {
        let _ = writeln!(text, "likely cause: {cause}");
    }
    if let Some(e) = &diagnosis.evidence {
        let _ = writeln!(text, "evidence ({}): {}", e.source, e.quote);
    }
    bundle.write("diagnosis.txt", Ok(text)).await;
    diagnosis.gaps = bundle
        .parts
        .iter()
        .filter_map(|(name, outcome)| outcome.as_ref().err().map(|why| format!("{name}: {why}")))
        .collect();
    write_index(&bundle).await?;
    Ok(diagnosis)
}

/// The likely cause of a failed setup, and the line that shows it: a crashing
/// container's last error line from its previous run's log, then an image or
/// configuration problem from the container's state, then the newest Warning event,
/// then the metrics APIService's condition.
fn diagnose_setup(
    focus: &SetupFocus,
    pods: &[Pod],
    logs: &[(String, String)],
    events: &[Event],
    api_service_unavailable: Option<String>,
) -> (Option<String>, Option<Evidence>) {
    for pod in pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        for status in statuses {
            let waiting = status.state.as_ref().and_then(|s| s.waiting.as_ref());
            let reason = waiting.and_then(|w| w.reason.clone()).unwrap_or_default();
            let last_exit = status
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref());
            if reason == "CrashLoopBackOff" || (last_exit.is_some() && !status.ready) {
                let exit = last_exit
                    .map(|t| {
                        format!(
                            "exit code {}, {}",
                            t.exit_code,
                            t.reason.as_deref().unwrap_or("terminated")
                        )
                    })
                    .unwrap_or_else(|| reason.clone());
                let cause = format!(
                    "container {} of pod {pod_name} keeps exiting ({exit}); its previous run's log says why",
                    status.name
                );
                let from_log = |suffix: &str| {
                    logs.iter()
                        .filter(|(file, _)| {
                            file.contains(&format!("{pod_name}.{}", status.name))
                                && file.ends_with(suffix)
                        })
                        .find_map(|(file, text)| {
                            decisive_line(text).map(|quote| Evidence {
                                quote,
                                source: file.clone(),
                            })
                        })
                };
                let evidence = from_log(".previous.log").or_else(|| from_log(".log"));
                return (Some(cause), evidence);
            }
            if !reason.is_empty() && reason != "ContainerCreating" && reason != "PodInitializing" {
                let message = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
                let cause = match reason.as_str() {
                    "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull"
                    | "InvalidImageName" => {
                        format!(
                            "{reason}: the node cannot get the image of container {} (with kind, it must be loaded into the node)",
                            status.name
                        )
                    }
                    _ => format!(
                        "{reason}: container {} of pod {pod_name} cannot start",
                        status.name
                    ),
                };
                let evidence = (!message.is_empty()).then(|| Evidence {
                    quote: message,
                    source: format!("pod {pod_name}, container {} state", status.name),
                });
                return (Some(cause), evidence);
            }
        }
    }
    let mut warnings: Vec<&Event> = events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .collect();
    warnings.sort_by_key(|e| last_seen(e));
    if let Some(event) = warnings.last() {
        let line = describe(event);
        let reason = event.reason.clone().unwrap_or_default();
        let ns = event.metadata.namespace.clone().unwrap_or_default();
        return (
            Some(format!("the cluster reported {reason}")),
            Some(Evidence {
                quote: line,
                source: format!("events.{ns}.txt"),
            }),
        );
    }
    if let (SetupFocus::MetricsPipeline, Some(why)) = (focus, api_service_unavailable) {
        return (
            Some(format!(
                "the metrics API ({}) is not available",
                metrics_server::API_SERVICE
            )),
            Some(Evidence {
                quote: why,
                source: "apiservice.yaml".into(),
            }),
        );
    }
    (None, None)
}

async fn write_index(bundle: &Bundle) -> Result<(), ClusterError> {
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
    let index_path = bundle.dir.join("index.txt");
    tokio::fs::write(&index_path, index)
        .await
        .map_err(|e| ClusterError::Invalid(format!("cannot write {}: {e}", index_path.display())))
}
