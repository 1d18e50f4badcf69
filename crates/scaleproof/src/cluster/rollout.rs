//! Waiting for a Deployment rollout, and saying why it did not finish.
//!
//! A bare "timed out" sends the user to kubectl; the diagnosis gathers what they
//! would look at (pod phases, container states and reasons, recent events) and names
//! the likely cause (ImagePullBackOff means the image was not loaded into kind, ...).

use std::fmt;
use std::pin::pin;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::api::{ListParams, LogParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::watch_object;
use kube::{Api, Client};

use super::evidence::{decisive_line, recent_events};
use super::{ClusterError, describe_kube_error, describe_watch_error};

/// How many recent events a diagnosis quotes.
const EVENTS_SHOWN: usize = 15;
/// How long a rollout may make no progress before the wait says what holds it up
/// (and again each time the cause changes), long before the timeout ends it.
const STALL_NOTICE_AFTER: Duration = Duration::from_secs(20);

/// Waits until the Deployment `name` has rolled out completely: its controller saw
/// the latest spec, and every desired replica is updated, ready and available with
/// no old pod left. Fails early when Kubernetes itself gives up
/// (`ProgressDeadlineExceeded`), and on timeout, with a [`RolloutDiagnosis`].
#[tracing::instrument(level = "debug", name = "cluster::rollout::wait_for_rollout", skip_all)]
pub async fn wait_for_rollout(
    client: &Client,
    namespace: &str,
    name: &str,
    selector: &str,
    timeout: Duration,
) -> Result<Deployment, ClusterError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let mut last_seen: Option<Deployment> = None;
    let mut watch_errors: (usize, Option<String>) = (0, None);
    // A rollout that can only time out (a probe that never passes) says so early.
    let said: Notices = Default::default();
    let notices = tokio::spawn(stall_notices(
        client.clone(),
        namespace.to_string(),
        name.to_string(),
        selector.to_string(),
        timeout,
        std::sync::Arc::clone(&said),
    ));
    let _stop_notices = AbortOnDrop(notices);
    let outcome = tokio::time::timeout(timeout, async {
        // With backoff, a failed list or watch is retried (calmly) rather than ending
        // the wait: an API server restarting or a watch expiring is no rollout failure.
        let mut updates = pin!(watch_object(api, name).default_backoff());
        while let Some(update) = updates.next().await {
            let update = match update {
                Ok(update) => update,
                Err(source) if !is_denied(&source) => {
                    watch_errors.0 += 1;
                    watch_errors.1 = Some(describe_watch_error(&source));
                    continue;
                }
                Err(source) => {
                    return Err(ClusterError::Watch {
                        what: format!("watch Deployment {namespace}/{name}"),
                        source,
                    });
                }
            };
            let Some(deployment) = update else {
                last_seen = None;
                continue; // not created yet, or deleted and about to be re-created
            };
            if rollout_complete(&deployment) {
                return Ok(Some(deployment));
            }
            let gave_up = progress_deadline_exceeded(&deployment);
            last_seen = Some(deployment);
            if gave_up {
                return Ok(None);
            }
        }
        Ok(None) // the watch ended, which kube's watcher never does on its own
    })
    .await;
    match outcome {
        Ok(Ok(Some(deployment))) => Ok(deployment),
        Ok(Err(e)) => Err(e),
        Ok(Ok(None)) | Err(_) => {
            let mut diagnosis =
                diagnose(client, namespace, name, selector, last_seen.as_ref()).await;
            if let (count, Some(error)) = watch_errors {
                diagnosis.gaps.push(format!(
                    "the Deployment's watch (failed {count} times, retried): {error}"
                ));
            }
            let early_notices = said
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            Err(ClusterError::Rollout(Box::new(RolloutFailure {
                namespace: namespace.to_string(),
                deployment: name.to_string(),
                waited: timeout,
                diagnosis,
                early_notices,
            })))
        }
    }
}

/// What [`stall_notices`] said, and when (seconds into the wait).
type Notices = std::sync::Arc<std::sync::Mutex<Vec<(u64, String)>>>;

/// Aborts a task when dropped (when the wait it accompanies ends, however it ends).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// While a rollout waits: after [`STALL_NOTICE_AFTER`], and then every time the cause
/// changes, a warning with the likely cause (a failing readiness probe with its last
/// error, a crash loop with its exit, an image that cannot be pulled), so that nobody
/// waits out the whole timeout to learn what the diagnosis will say.
async fn stall_notices(
    client: Client,
    namespace: String,
    name: String,
    selector: String,
    timeout: Duration,
    notices: Notices,
) {
    let started = tokio::time::Instant::now();
    let mut said: Option<String> = None;
    loop {
        tokio::time::sleep(STALL_NOTICE_AFTER).await;
        let diagnosis = diagnose(&client, &namespace, &name, &selector, None).await;
        let Some(cause) = diagnosis.likely_cause else {
            continue;
        };
        if said.as_deref() != Some(cause.as_str()) {
            let after = started.elapsed().as_secs();
            tracing::warn!(
                "rollout of Deployment {namespace}/{name} stalled after {after}s: {cause} \
                 (still waiting, up to {}s in all)",
                timeout.as_secs()
            );
            notices
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((after, cause.clone()));
            said = Some(cause);
        }
    }
}

/// Whether a watch failed because the user may not read the object: retrying cannot
/// fix that.
fn is_denied(error: &kube::runtime::watcher::Error) -> bool {
    use kube::runtime::watcher::Error as W;
    match error {
        W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e) => {
            matches!(e, kube::Error::Api(s) if matches!(s.code, 401 | 403))
        }
        _ => false,
    }
}

/// The check `kubectl rollout status` makes: the controller observed the latest
/// generation, and all desired replicas are updated, ready and available, with no
/// surplus (old) replicas left.
pub fn rollout_complete(deployment: &Deployment) -> bool {
    let (Some(spec), Some(status)) = (&deployment.spec, &deployment.status) else {
        return false;
    };
    let desired = spec.replicas.unwrap_or(1);
    let observed =
        status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0);
    observed
        && status.updated_replicas.unwrap_or(0) == desired
        && status.ready_replicas.unwrap_or(0) == desired
        && status.available_replicas.unwrap_or(0) == desired
        && status.replicas.unwrap_or(0) == desired
}

fn progress_deadline_exceeded(deployment: &Deployment) -> bool {
    deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
        })
}

/// A Deployment that did not become ready, and why.
#[derive(Debug)]
pub struct RolloutFailure {
    pub namespace: String,
    pub deployment: String,
    pub waited: Duration,
    pub diagnosis: RolloutDiagnosis,
    /// What the wait said while it stalled (seconds into the wait, the likely cause),
    /// before the timeout ended it.
    pub early_notices: Vec<(u64, String)>,
}

impl fmt::Display for RolloutFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Deployment {}/{} did not become ready (waited up to {}s)\n{}",
            self.namespace,
            self.deployment,
            self.waited.as_secs(),
            self.diagnosis
        )?;
        if let Some((after, _)) = self.early_notices.first() {
            write!(f, "  (the wait first named the cause after {after}s)")?;
        }
        Ok(())
    }
}

impl std::error::Error for RolloutFailure {}

/// What the cluster says about a Deployment that is not ready.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutDiagnosis {
    /// `ready/desired` and friends, or why the Deployment could not be read.
    pub status: String,
    /// The most probable reason, when the evidence names one.
    pub likely_cause: Option<String>,
    pub pods: Vec<PodReport>,
    /// Recent events of the namespace, oldest first.
    pub events: Vec<String>,
    /// Parts that could not be gathered (each with its error).
    pub gaps: Vec<String>,
}

/// One pod of the Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct PodReport {
    pub name: String,
    pub phase: String,
    pub ready: bool,
    /// One line per container: its state, reason and message.
    pub containers: Vec<String>,
}

impl fmt::Display for RolloutDiagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  status: {}", self.status)?;
        if let Some(cause) = &self.likely_cause {
            writeln!(f, "  likely cause: {cause}")?;
        }
        if self.pods.is_empty() {
            writeln!(f, "  pods: none")?;
        }
        for pod in &self.pods {
            let ready = if pod.ready { "ready" } else { "not ready" };
            writeln!(f, "  pod {} ({}, {ready})", pod.name, pod.phase)?;
            for container in &pod.containers {
                writeln!(f, "    {container}")?;
            }
        }
        if !self.events.is_empty() {
            writeln!(f, "  recent events:")?;
            for event in &self.events {
                writeln!(f, "    {event}")?;
            }
        }
        for gap in &self.gaps {
            writeln!(f, "  (could not read {gap})")?;
        }
        Ok(())
    }
}

/// Gathers the diagnosis. Best-effort: a part that cannot be read becomes a gap.
#[tracing::instrument(level = "debug", name = "cluster::rollout::diagnose", skip_all)]
pub async fn diagnose(
    client: &Client,
    namespace: &str,
    name: &str,
    selector: &str,
    last_seen: Option<&Deployment>,
) -> RolloutDiagnosis {
    let mut diagnosis = RolloutDiagnosis::default();
    let deployment = match last_seen {
        Some(d) => Some(d.clone()),
        None => match Api::<Deployment>::namespaced(client.clone(), namespace)
            .get(name)
            .await
        {
            Ok(d) => Some(d),
            Err(e) => {
                diagnosis
                    .gaps
                    .push(format!("Deployment {name}: {}", describe_kube_error(&e)));
                None
            }
        },
    };
    diagnosis.status = deployment
        .as_ref()
        .map(status_line)
        .unwrap_or_else(|| "unknown".to_string());

    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(selector))
        .await;
    let pods = match pods {
        Ok(list) => list.items,
        Err(e) => {
            diagnosis
                .gaps
                .push(format!("pods ({selector}): {}", describe_kube_error(&e)));
            Vec::new()
        }
    };
    diagnosis.pods = pods.iter().map(pod_report).collect();
    // A container that exited said why on its way out: quote that line here, so the
    // failure explains itself without the bundle.
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for (pod, report) in pods.iter().zip(diagnosis.pods.iter_mut()) {
        for exited in exited_containers(pod) {
            let params = LogParams {
                container: Some(exited.clone()),
                previous: true,
                tail_lines: Some(LAST_WORDS_LINES),
                ..LogParams::default()
            };
            match pods_api.logs(&report.name, &params).await {
                Ok(log) => {
                    if let Some(line) = decisive_line(&log) {
                        report
                            .containers
                            .push(format!("container {exited}, last words: {line}"));
                    }
                }
                Err(e) => diagnosis.gaps.push(format!(
                    "previous log of {}/{exited}: {}",
                    report.name,
                    describe_kube_error(&e)
                )),
            }
        }
    }

    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await;
    let events = match events {
        Ok(list) => list.items,
        Err(e) => {
            diagnosis
                .gaps
                .push(format!("events: {}", describe_kube_error(&e)));
            Vec::new()
        }
    };
    diagnosis.events = recent_events(events, EVENTS_SHOWN);
    diagnosis.likely_cause = likely_cause(&pods, &diagnosis.events, deployment.as_ref());
    diagnosis
}

/// Lines of a crashed container's previous log read for its last words.
const LAST_WORDS_LINES: i64 = 50;

/// The containers of `pod` that have exited at least once.
fn exited_containers(pod: &Pod) -> Vec<String> {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter(|c| {
            c.last_state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some())
        })
        .map(|c| c.name.clone())
        .collect()
}

fn status_line(deployment: &Deployment) -> String {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let mut line = format!(
        "{}/{desired} ready, {} updated, {} available",
        status.ready_replicas.unwrap_or(0),
        status.updated_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0)
    );
    for c in status.conditions.iter().flatten() {
        if c.status != "True" || c.reason.as_deref() == Some("ProgressDeadlineExceeded") {
            line.push_str(&format!(
                "; {}={} {}: {}",
                c.type_,
                c.status,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            ));
        }
    }
    line
}

fn pod_report(pod: &Pod) -> PodReport {
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .map(|c| format!("init {}", container_line(c)))
        .chain(
            status
                .container_statuses
                .iter()
                .flatten()
                .map(container_line),
        )
        .collect();
    PodReport {
        name: pod.metadata.name.clone().unwrap_or_default(),
        phase: status.phase.unwrap_or_else(|| "Unknown".to_string()),
        ready,
        containers,
    }
}

fn container_line(c: &ContainerStatus) -> String {
    let state = c.state.clone().unwrap_or_default();
    let now = if let Some(w) = &state.waiting {
        format!(
            "waiting: {}: {}",
            w.reason.as_deref().unwrap_or("?"),
            w.message.as_deref().unwrap_or("")
        )
    } else if let Some(t) = &state.terminated {
        format!(
            "terminated: {} (exit code {}): {}",
            t.reason.as_deref().unwrap_or("?"),
            t.exit_code,
            t.message.as_deref().unwrap_or("")
        )
    } else if state.running.is_some() {
        "running".to_string()
    } else {
        "state unknown".to_string()
    };
    let last = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| {
            format!(
                "; last exit: {} (exit code {})",
                t.reason.as_deref().unwrap_or("?"),
                t.exit_code
            )
        })
        .unwrap_or_default();
    format!(
        "container {}: {}, ready={}, restarts={}{last}",
        c.name,
        now.trim_end_matches(": "),
        c.ready,
        c.restart_count
    )
}

/// `the readiness probe httpGet /health on port 8080 (every 2s)`.
fn describe_probe(probe: &k8s_openapi::api::core::v1::Probe) -> String {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let period = probe.period_seconds.unwrap_or(10);
    let what = match (&probe.http_get, &probe.tcp_socket, &probe.exec) {
        (Some(h), _, _) => format!(
            "httpGet {} on port {}",
            h.path.as_deref().unwrap_or("/"),
            match &h.port {
                IntOrString::Int(p) => p.to_string(),
                IntOrString::String(s) => s.clone(),
            }
        ),
        (_, Some(t), _) => format!(
            "tcpSocket on port {}",
            match &t.port {
                IntOrString::Int(p) => p.to_string(),
                IntOrString::String(s) => s.clone(),
            }
        ),
        (_, _, Some(_)) => "exec".to_string(),
        _ => "probe".to_string(),
    };
    format!("the readiness probe {what} (every {period}s)")
}

/// Names the most probable cause from container states and events.
fn likely_cause(
    pods: &[Pod],
    events: &[String],
    deployment: Option<&Deployment>,
) -> Option<String> {
    let image = deployment
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_else(|| "the image".to_string());
    let statuses = pods
        .iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.container_statuses.iter().flatten());
    for status in statuses {
        let waiting = status.state.as_ref().and_then(|s| s.waiting.as_ref());
        let reason = waiting.and_then(|w| w.reason.as_deref()).unwrap_or("");
        let message = waiting.and_then(|w| w.message.as_deref()).unwrap_or("");
        match reason {
            "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull" | "InvalidImageName" => {
                return Some(format!(
                    "{reason}: the node cannot get {image}. With kind, load it first \
                     (`kind load docker-image {image} --name CLUSTER`); on another cluster, \
                     push it to a registry the nodes can pull from"
                ));
            }
            "CrashLoopBackOff" => {
                let exit = status
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| format!(" (last exit code {})", t.exit_code))
                    .unwrap_or_default();
                return Some(format!(
                    "CrashLoopBackOff: the container keeps exiting{exit}; its logs say why \
                     (`kubectl logs --previous`, or the diagnostics bundle)"
                ));
            }
            "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
                return Some(format!(
                    "{reason}: the container could not start: {message}"
                ));
            }
            _ => {}
        }
        if let Some(t) = status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            && t.reason.as_deref() == Some("OOMKilled")
        {
            return Some("OOMKilled: the container exceeds its memory limit".to_string());
        }
    }
    if let Some(event) = events.iter().rev().find(|e| e.contains("FailedScheduling")) {
        return Some(format!("the pod cannot be scheduled: {event}"));
    }
    if let Some(event) = events.iter().rev().find(|e| e.contains("FailedCreate")) {
        return Some(format!(
            "the ReplicaSet cannot create pods (Pod Security admission, quota...): {event}"
        ));
    }
    if pods.iter().any(|p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            && !pod_report(p).ready
    }) {
        let probe = deployment
            .and_then(|d| d.spec.as_ref())
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.containers.first())
            .and_then(|c| c.readiness_probe.as_ref())
            .map(describe_probe)
            .unwrap_or_else(|| "its readiness probe".to_string());
        // The kubelet's Unhealthy event carries the probe's last error.
        let last_error = events
            .iter()
            .rev()
            .find(|e| e.contains("Unhealthy"))
            .map(|e| format!("; last failure: {e}"))
            .unwrap_or_else(|| "; see its logs".to_string());
        return Some(format!("the pod runs but {probe} never passes{last_error}"));
    }
    None
}
