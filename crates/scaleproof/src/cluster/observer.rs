//! The observer: what the HPA saw and did during a scenario, as a [`Timeline`].
//!
//! The HPA is watched (its status changes are pushed, so none is missed between
//! samples); pods and PodMetrics are read once per period. A metrics API that is
//! absent or failing yields samples without per-pod usage and a warning: the
//! timeline still shows what the HPA did, and the verdict decides what that means.

use std::collections::BTreeMap;
use std::pin::pin;
use std::time::Duration;

use futures::StreamExt;
use k8s_metrics::v1beta1::PodMetrics;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ListParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::watch_object;
use kube::{Api, Client};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::objects::Target;
use super::reset::is_ready;
use super::{describe_kube_error, describe_metrics_api_error, describe_watch_error};
use crate::timeline::{
    Condition, MetricSample, MetricsGap, ReplicaUsage, ScaleSample, Timeline, driving_metric,
};

/// What to observe, and how often.
#[derive(Debug, Clone)]
pub struct ObserverConfig {
    pub target: Target,
    /// Time between samples (1 s in scenarios).
    pub period: Duration,
    /// The scenario's time zero (when load starts); `t_s` counts from it.
    pub started: Instant,
}

/// The timeline of one scenario, and what went wrong while recording it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    pub timeline: Timeline,
    /// Distinct problems, each with how often it happened (`... (x3)`).
    pub warnings: Vec<String>,
}

/// Samples until `cancel` is cancelled, then returns what it saw. Never fails: every
/// problem becomes a warning, and a tick that cannot see the HPA or the pods yields
/// no sample.
#[tracing::instrument(level = "debug", name = "cluster::observer::observe", skip_all)]
pub async fn observe(
    client: Client,
    config: ObserverConfig,
    cancel: CancellationToken,
) -> Observation {
    let ns = config.target.namespace.as_str();
    let mut warnings = Warnings::default();
    let mut timeline = Timeline::default();
    // What a scale-up has to exceed: the replicas ready when the load starts (the
    // HPA's own status may not exist yet, and its first "1" is no scale-up).
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    match deployments.get(&config.target.deployment).await {
        Ok(d) => {
            timeline.start_replicas = Some(
                d.status
                    .and_then(|s| s.ready_replicas)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0),
            )
        }
        Err(e) => warnings.add(format!(
            "Deployment {ns}/{}: {}; the first scale-up is measured from the first HPA status",
            config.target.deployment,
            describe_kube_error(&e)
        )),
    }
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod_metrics: Api<PodMetrics> = Api::namespaced(client, ns);
    let params = ListParams::default().labels(&config.target.selector);

    // Backoff, so a failing watch is retried calmly instead of in a tight loop.
    let mut hpa_updates = pin!(watch_object(hpas, &config.target.hpa).default_backoff());
    let mut ticks = tokio::time::interval(config.period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);

    let mut gaps = GapTracker::default();
    // Pods already reported as evicted or otherwise disrupted.
    let mut disrupted: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut watch_ended = false;
    let mut latest_hpa: Option<HorizontalPodAutoscaler> = None;
    // Restart counts per pod and container, so a container that died mid-scenario
    // (OOM-killed, crashed, killed from outside) is an event of the timeline.
    let mut restarts: BTreeMap<(String, String), i32> = BTreeMap::new();
    // Restarts that ended after this are the scenario's, even on a pod first seen
    // after its container had already died and come back between two samples.
    let watching_since = k8s_openapi::jiff::Timestamp::now();
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            update = hpa_updates.next(), if !watch_ended => match update {
                Some(Ok(Some(hpa))) => latest_hpa = Some(hpa),
                Some(Ok(None)) => {
                    latest_hpa = None;
                    warnings.add(format!("HPA {ns}/{} does not exist", config.target.hpa));
                }
                Some(Err(e)) => warnings.add(format!("HPA watch: {}", describe_watch_error(&e))),
                None => {
                    // kube's watcher does not end on its own; if it does, keep
                    // sampling pods with the last HPA state seen.
                    watch_ended = true;
                    warnings.add("HPA watch ended".to_string());
                }
            },
            _ = ticks.tick() => {
                let Some(hpa) = &latest_hpa else { continue };
                let t_s = Instant::now().saturating_duration_since(config.started).as_secs_f64();
                // Both at once, the metrics bounded by one period: a metrics API that
                // is down (retried by the client for up to its budget) must not hold
                // up the HPA's and the pods' samples; that tick is a metrics gap.
                let metrics_bound = config.period.max(METRICS_READ_MIN);
                let read = async {
                    tokio::join!(
                        pods.list(&params),
                        tokio::time::timeout(metrics_bound, pod_metrics.list(&params)),
                    )
                };
                // A read that completed is kept even if cancellation came with it.
                let (pod_list, metrics) = tokio::select! {
                    biased;
                    read = read => read,
                    () = cancel.cancelled() => break,
                };
                let pod_list = match pod_list {
                    Ok(list) => list.items,
                    Err(e) => {
                        warnings.add(format!("list pods: {}", describe_kube_error(&e)));
                        continue;
                    }
                };
                let metrics = match metrics {
                    Ok(Ok(list)) => {
                        gaps.back(&mut timeline, t_s);
                        Some(list.items)
                    }
                    Ok(Err(e)) => {
                        let cause = describe_metrics_api_error(&e);
                        warnings.add(format!(
                            "metrics API (PodMetrics): {cause}; samples carry no per-pod usage"
                        ));
                        gaps.missing(&mut timeline, t_s, cause);
                        None
                    }
                    Err(_) => {
                        let cause = format!(
                            "no answer within {:.1} s",
                            metrics_bound.as_secs_f64()
                        );
                        warnings.add(format!("metrics API (PodMetrics): {cause}"));
                        gaps.missing(&mut timeline, t_s, cause);
                        None
                    }
                };
                for message in container_restarts(&mut restarts, &pod_list, watching_since) {
                    timeline.incident(t_s, message);
                }
                for message in disruptions(&mut disrupted, &pod_list) {
                    timeline.incident(t_s, message);
                }
                let next = sample(t_s, hpa, &pod_list, metrics.as_deref());
                for message in changes(timeline.samples.last(), &next) {
                    timeline.event(t_s, message);
                }
                timeline.push(next);
            }
        }
    }
    let end_s = timeline.end_s();
    gaps.close(&mut timeline, end_s);
    Observation {
        timeline,
        warnings: warnings.into_lines(),
    }
}

/// A sentence for each pod newly seen disrupted from outside: the `DisruptionTarget`
/// condition the API server, the kubelet, the scheduler or the taint manager sets
/// before deleting a pod (reasons `EvictionByEvictionAPI`, `TerminationByKubelet`,
/// `PreemptionByScheduler`, `DeletionByTaintManager`), or a pod the kubelet failed
/// with reason `Evicted` (node pressure). Without it such a pod is only a dip in the
/// ready count.
pub fn disruptions(seen: &mut std::collections::BTreeSet<String>, pods: &[Pod]) -> Vec<String> {
    let mut out = Vec::new();
    for pod in pods {
        let Some(name) = pod.metadata.name.as_deref() else {
            continue;
        };
        let status = pod.status.as_ref();
        let condition = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter()
                    .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
            })
            .map(|c| {
                format!(
                    "{}: {}",
                    c.reason.as_deref().unwrap_or("DisruptionTarget"),
                    c.message.as_deref().unwrap_or("")
                )
            });
        let evicted = status
            .filter(|s| s.reason.as_deref() == Some("Evicted"))
            .map(|s| format!("Evicted: {}", s.message.as_deref().unwrap_or("")));
        if let Some(why) = condition.or(evicted)
            && seen.insert(name.to_string())
        {
            out.push(format!("pod {name} disrupted from outside ({why})"));
        }
    }
    out
}

/// The shortest wait for the metrics API in one sample.
const METRICS_READ_MIN: Duration = Duration::from_secs(1);

/// The metrics gap being observed: open from the first sample that could not read
/// the metrics API until the first that could.
#[derive(Debug, Default)]
struct GapTracker {
    open: Option<(f64, String)>,
}

impl GapTracker {
    fn missing(&mut self, timeline: &mut Timeline, t_s: f64, cause: String) {
        if self.open.is_none() {
            timeline.incident(
                t_s,
                format!(
                    "metrics API unavailable ({cause}): samples carry no usage until it is back"
                ),
            );
            self.open = Some((t_s, cause));
        }
    }

    fn back(&mut self, timeline: &mut Timeline, t_s: f64) {
        if let Some((from_s, cause)) = self.open.take() {
            timeline.incident(
                t_s,
                format!(
                    "metrics API back after {:.1} s without metrics",
                    t_s - from_s
                ),
            );
            timeline.metrics_gaps.push(MetricsGap {
                from_s,
                to_s: t_s,
                cause,
                recovered: true,
            });
        }
    }

    /// A gap still open when the scenario ends lasts to its last sample.
    fn close(&mut self, timeline: &mut Timeline, end_s: f64) {
        if let Some((from_s, cause)) = self.open.take() {
            timeline.metrics_gaps.push(MetricsGap {
                from_s,
                to_s: end_s.max(from_s),
                cause,
                recovered: false,
            });
        }
    }
}

/// A sentence for each container whose restart count grew since `seen` last saw its
/// pod, or, at its first sighting, whose last run ended after `since` (a pod created,
/// killed and restarted between two samples): which container of which pod,
/// how its last run ended (reason, exit code and the signal it means) and how long
/// it had run. A pod that dies and comes back between two samples would otherwise
/// show only as a dip in the ready count.
pub fn container_restarts(
    seen: &mut BTreeMap<(String, String), i32>,
    pods: &[Pod],
    since: k8s_openapi::jiff::Timestamp,
) -> Vec<String> {
    let mut out = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten();
        for status in statuses {
            let key = (name.clone(), status.name.clone());
            let before = seen.insert(key, status.restart_count);
            let last = status
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref());
            let new_restart = match before {
                Some(before) => status.restart_count > before,
                None => {
                    status.restart_count > 0
                        && last
                            .and_then(|t| t.finished_at.as_ref())
                            .is_some_and(|at| at.0 >= since)
                }
            };
            if !new_restart {
                continue;
            }
            let how = match last {
                Some(t) => {
                    let signal = if t.exit_code > 128 {
                        match t.exit_code - 128 {
                            9 => " (SIGKILL)".to_string(),
                            15 => " (SIGTERM)".to_string(),
                            6 => " (SIGABRT)".to_string(),
                            11 => " (SIGSEGV)".to_string(),
                            n => format!(" (signal {n})"),
                        }
                    } else {
                        String::new()
                    };
                    let ran = match (&t.started_at, &t.finished_at) {
                        (Some(a), Some(b)) => format!(
                            " after running {} s",
                            b.0.duration_since(a.0).as_secs_f64().round()
                        ),
                        _ => String::new(),
                    };
                    format!(
                        "{}, exit code {}{signal}{ran}",
                        t.reason.as_deref().unwrap_or("terminated"),
                        t.exit_code
                    )
                }
                None => "its last state unknown".to_string(),
            };
            out.push(format!(
                "container {} of pod {name} restarted ({} restart{} in all): {how}",
                status.name,
                status.restart_count,
                if status.restart_count == 1 { "" } else { "s" }
            ));
        }
    }
    out
}

/// One sample from the HPA, the Deployment's pods and (when served) their metrics.
///
/// An HPA the controller has not reconciled yet has an empty status (the API server
/// clears it on create; the controller's first sync comes one sync period later),
/// so its replica counts are `None`, not 0. A reconciled HPA always has conditions
/// (`AbleToScale` is set on every sync), which is how the two are told apart.
pub fn sample(
    t_s: f64,
    hpa: &HorizontalPodAutoscaler,
    pods: &[Pod],
    metrics: Option<&[PodMetrics]>,
) -> ScaleSample {
    let count = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    let status = hpa.status.clone().unwrap_or_default();
    let synced = status.conditions.as_ref().is_some_and(|c| !c.is_empty());
    let cpu_utilization_pct = status
        .current_metrics
        .iter()
        .flatten()
        .filter_map(|m| m.resource.as_ref())
        .find(|r| r.name == "cpu")
        .and_then(|r| r.current.average_utilization);
    let cpu_target_pct = hpa
        .spec
        .as_ref()
        .and_then(|s| s.metrics.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|m| m.resource.as_ref())
        .find(|r| r.name == "cpu")
        .and_then(|r| r.target.average_utilization);

    let replicas: Vec<ReplicaUsage> = pods
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let pod_metrics = metrics.and_then(|ms| {
                ms.iter()
                    .find(|m| m.metadata.name.as_deref() == Some(&name))
            });
            let cpu_millicores = pod_metrics
                .and_then(|m| m.cpu().ok())
                .map(|cores| (cores * 1000.0).round().max(0.0) as u64);
            let memory_bytes = pod_metrics
                .and_then(|m| m.memory().ok())
                .and_then(|bytes| u64::try_from(bytes).ok());
            ReplicaUsage {
                ready: p.metadata.deletion_timestamp.is_none() && is_ready(p),
                name,
                cpu_millicores,
                memory_bytes,
            }
        })
        .collect();

    let current_replicas = synced.then(|| count(status.current_replicas));
    let metric_samples = metric_samples(hpa, current_replicas);

    ScaleSample {
        t_s,
        desired_replicas: synced.then(|| count(Some(status.desired_replicas))),
        current_replicas,
        ready_replicas: replicas.iter().filter(|r| r.ready).count() as u32,
        terminating_replicas: pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .count() as u32,
        cpu_utilization_pct: cpu_utilization_pct.and_then(|u| u32::try_from(u).ok()),
        cpu_target_pct: count(cpu_target_pct),
        replicas,
        conditions: status
            .conditions
            .iter()
            .flatten()
            .map(|c| Condition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
            })
            .collect(),
        metrics: metric_samples,
    }
}

/// Every Resource and ContainerResource metric of the HPA's `status.currentMetrics`,
/// with its target from the spec (matched by name, and container) and the replica
/// count it proposes at `replicas`. Pods, Object and External metrics are skipped:
/// the workload's HPA uses none, and the harness reads no custom metrics API.
pub fn metric_samples(hpa: &HorizontalPodAutoscaler, replicas: Option<u32>) -> Vec<MetricSample> {
    let specs: Vec<&MetricSpec> = hpa
        .spec
        .as_ref()
        .and_then(|s| s.metrics.as_ref())
        .into_iter()
        .flatten()
        .collect();
    let quantity = |q: Option<&Quantity>| {
        q.and_then(|q| scaleproof_hpa::parse_milli(&q.0))
            .map(|milli| milli as f64 / 1000.0)
    };
    let utilization = |u: Option<i32>| u.and_then(|u| u32::try_from(u).ok());
    let statuses = hpa
        .status
        .as_ref()
        .and_then(|s| s.current_metrics.as_ref())
        .into_iter()
        .flatten();
    statuses
        .filter_map(|status| {
            let (name, current, target) = if let Some(r) = &status.resource {
                let target = specs
                    .iter()
                    .filter_map(|m| m.resource.as_ref())
                    .find(|m| m.name == r.name)
                    .map(|m| &m.target);
                (r.name.clone(), &r.current, target)
            } else if let Some(c) = &status.container_resource {
                let target = specs
                    .iter()
                    .filter_map(|m| m.container_resource.as_ref())
                    .find(|m| m.name == c.name && m.container == c.container)
                    .map(|m| &m.target);
                (format!("{}/{}", c.container, c.name), &c.current, target)
            } else {
                return None;
            };
            let mut sample = MetricSample {
                name,
                current_utilization_pct: utilization(current.average_utilization),
                current_average_value: quantity(current.average_value.as_ref()),
                target_utilization_pct: target.and_then(|t| utilization(t.average_utilization)),
                target_average_value: target
                    .filter(|t| t.type_ == "AverageValue")
                    .and_then(|t| quantity(t.average_value.as_ref())),
                proposal_replicas: None,
            };
            sample.proposal_replicas = replicas.and_then(|n| sample.proposal(n));
            Some(sample)
        })
        .collect()
}

/// What changed from `previous` to `next` that a person reading the report should
/// see: a new desired replica count (with the utilization that drove it), scaling
/// becoming limited, and the ready count moving.
pub fn changes(previous: Option<&ScaleSample>, next: &ScaleSample) -> Vec<String> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    let mut messages = Vec::new();
    if let (None, Some(desired)) = (previous.desired_replicas, next.desired_replicas) {
        // A first sync can already rescale (load that started before it): say on what.
        let why = match metrics_explanation(next) {
            Some(why) if next.current_replicas != Some(desired) => format!(" {why}"),
            _ => String::new(),
        };
        messages.push(format!(
            "HPA synced for the first time: desired {desired}{why}"
        ));
    }
    if let (Some(before), Some(after)) = (previous.desired_replicas, next.desired_replicas)
        && before != after
    {
        messages.push(rescale_message(before, after, next));
    }
    let limited = |s: &ScaleSample| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "ScalingLimited" && c.status == "True")
            .cloned()
    };
    match (limited(previous), limited(next)) {
        (None, Some(c)) => messages.push(format!("scaling limited: {}: {}", c.reason, c.message)),
        (Some(a), Some(b)) if a.reason != b.reason => {
            messages.push(format!("scaling limited: {}: {}", b.reason, b.message));
        }
        _ => {}
    }
    // The stabilization window holding a change back (upstream's AbleToScale reasons
    // ScaleDownStabilized / ScaleUpStabilized): why replicas stay while load changed.
    let stabilized = |s: &ScaleSample| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "AbleToScale" && c.reason.ends_with("Stabilized"))
            .cloned()
    };
    if let (None, Some(c)) = (stabilized(previous), stabilized(next)) {
        let direction = if c.reason.starts_with("ScaleDown") {
            "scale-down"
        } else {
            "scale-up"
        };
        messages.push(format!(
            "{direction} held by the stabilization window: {}",
            c.message
        ));
    }
    if next.terminating_replicas != previous.terminating_replicas {
        messages.push(format!(
            "pods terminating {} -> {}",
            previous.terminating_replicas, next.terminating_replicas
        ));
    }
    if next.ready_replicas != previous.ready_replicas {
        messages.push(format!(
            "ready replicas {} -> {}",
            previous.ready_replicas, next.ready_replicas
        ));
    }
    messages
}

/// `on memory: <the driving metric>; <the others>`: every metric with what it
/// proposed, the largest first; `None` when no metric proposed anything.
fn metrics_explanation(next: &ScaleSample) -> Option<String> {
    let proposal = |m: &MetricSample| match m.proposal_replicas {
        Some(p) => format!("{} (proposal {p})", m.describe()),
        None => m.describe(),
    };
    let driving = driving_metric(&next.metrics)?;
    let mut message = format!("on {}: {}", driving.name, proposal(driving));
    for other in next.metrics.iter().filter(|m| !std::ptr::eq(*m, driving)) {
        message.push_str("; ");
        message.push_str(&proposal(other));
    }
    Some(message)
}

/// `scaled 1 -> 3 on memory: <the driving metric>; <the others>`: every metric with
/// what it proposed, the largest first, which is the one the HPA followed (it takes
/// the largest proposal). An HPA status without metrics falls back to the CPU figure.
fn rescale_message(before: u32, after: u32, next: &ScaleSample) -> String {
    if let Some(why) = metrics_explanation(next) {
        return format!("scaled {before} -> {after} {why}");
    }
    let why = match next.cpu_utilization_pct {
        Some(u) => {
            let side = if u > next.cpu_target_pct {
                "above"
            } else {
                "below"
            };
            format!(
                "cpu utilization {u}% of request is {side} target {}%",
                next.cpu_target_pct
            )
        }
        None => "metrics unknown".to_string(),
    };
    format!("scaled {before} -> {after}: {why}")
}

/// Distinct warnings in first-seen order, with repeat counts: a metrics API that is
/// down for a whole scenario is one line, not one per second.
#[derive(Debug, Default)]
struct Warnings {
    order: Vec<String>,
    counts: BTreeMap<String, usize>,
}

impl Warnings {
    fn add(&mut self, message: String) {
        let count = self.counts.entry(message.clone()).or_insert(0);
        if *count == 0 {
            tracing::warn!("{message}");
            self.order.push(message);
        }
        *count += 1;
    }

    fn into_lines(self) -> Vec<String> {
        self.order
            .into_iter()
            .map(|m| match self.counts.get(&m) {
                Some(n) if *n > 1 => format!("{m} (x{n})"),
                _ => m,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_evicted_pod_is_reported_once_with_its_reason() {
        let pod = |name: &str, status: serde_json::Value| -> Pod {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": name}, "status": status}),
            )
            .expect("a pod")
        };
        let pods = [
            pod(
                "calm",
                serde_json::json!({"conditions": [{"type": "Ready", "status": "True"}]}),
            ),
            pod(
                "api",
                serde_json::json!({"conditions": [{"type": "DisruptionTarget", "status": "True",
                "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}]}),
            ),
            pod(
                "pressure",
                serde_json::json!({"phase": "Failed", "reason": "Evicted",
                "message": "The node was low on resource: memory."}),
            ),
        ];
        let mut seen = std::collections::BTreeSet::new();
        assert_eq!(
            super::disruptions(&mut seen, &pods),
            [
                "pod api disrupted from outside (EvictionByEvictionAPI: Eviction API: evicting)",
                "pod pressure disrupted from outside (Evicted: The node was low on resource: memory.)",
            ]
        );
        assert!(super::disruptions(&mut seen, &pods).is_empty(), "once");
    }

    use super::*;

    fn at(desired: u32, ready: u32, utilization: Option<u32>, limited: bool) -> ScaleSample {
        ScaleSample {
            t_s: 0.0,
            desired_replicas: Some(desired),
            current_replicas: Some(desired),
            ready_replicas: ready,
            terminating_replicas: 0,
            cpu_utilization_pct: utilization,
            cpu_target_pct: 50,
            replicas: Vec::new(),
            conditions: vec![Condition {
                type_: "ScalingLimited".into(),
                status: if limited { "True" } else { "False" }.into(),
                reason: if limited {
                    "TooManyReplicas"
                } else {
                    "DesiredWithinRange"
                }
                .into(),
                message: "m".into(),
            }],
            metrics: Vec::new(),
        }
    }

    #[test]
    fn rescales_limits_and_readiness_become_events() {
        assert!(changes(None, &at(1, 1, Some(10), false)).is_empty());
        assert!(changes(Some(&at(1, 1, Some(10), false)), &at(1, 1, Some(12), false)).is_empty());
        assert_eq!(
            changes(Some(&at(1, 1, Some(40), false)), &at(3, 1, Some(210), true)),
            [
                "scaled 1 -> 3: cpu utilization 210% of request is above target 50%",
                "scaling limited: TooManyReplicas: m",
            ]
        );
        assert_eq!(
            changes(Some(&at(3, 3, Some(20), false)), &at(2, 2, None, false)),
            ["scaled 3 -> 2: metrics unknown", "ready replicas 3 -> 2"]
        );
    }

    /// An HPA as the API returns it, with cpu (Utilization) and memory (AverageValue)
    /// metrics and upstream's currentMetrics shapes.
    fn two_metric_hpa(
        cpu_pct: i32,
        memory: &str,
        current_replicas: i32,
    ) -> HorizontalPodAutoscaler {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "h", "namespace": "n"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "d", "apiVersion": "apps/v1"},
                "maxReplicas": 3,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Resource", "resource": {"name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "48Mi"}}},
                    {"type": "ContainerResource", "containerResource": {"name": "memory",
                        "container": "iris-server",
                        "target": {"type": "Utilization", "averageUtilization": 60}}},
                ],
            },
            "status": {
                "currentReplicas": current_replicas,
                "desiredReplicas": 3,
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "SucceededRescale"}],
                "currentMetrics": [
                    {"type": "Resource", "resource": {"name": "cpu",
                        "current": {"averageUtilization": cpu_pct, "averageValue": "4m"}}},
                    {"type": "Resource", "resource": {"name": "memory",
                        "current": {"averageValue": memory}}},
                    {"type": "ContainerResource", "containerResource": {"name": "memory",
                        "container": "iris-server",
                        "current": {"averageUtilization": 90, "averageValue": "120795955"}}},
                ],
            },
        }))
        .expect("a valid HPA")
    }

    #[test]
    fn samples_carry_every_metric_and_the_scale_event_names_the_driver() {
        let hpa = two_metric_hpa(4, "125829120", 1);
        let next = sample(1.0, &hpa, &[], None);
        let names: Vec<&str> = next.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["cpu", "memory", "iris-server/memory"]);
        assert_eq!(next.metrics[0].proposal_replicas, Some(1));
        assert_eq!(next.metrics[1].current_average_value, Some(125_829_120.0));
        assert_eq!(next.metrics[1].target_average_value, Some(50_331_648.0));
        // 120Mi against 48Mi: ceil(2.5 x 1) = 3.
        assert_eq!(next.metrics[1].proposal_replicas, Some(3));
        // 90% against 60%: ceil(1.5 x 1) = 2.
        assert_eq!(next.metrics[2].proposal_replicas, Some(2));
        let previous = ScaleSample {
            desired_replicas: Some(1),
            ..next.clone()
        };
        assert_eq!(
            changes(Some(&previous), &next),
            [
                "scaled 1 -> 3 on memory: memory average 120.0Mi is above target 48.0Mi \
              (proposal 3); cpu utilization 4% of request is below target 50% (proposal 1); \
              iris-server/memory utilization 90% of request is above target 60% (proposal 2)"
            ]
        );
        assert_eq!(
            driving_metric(&next.metrics).map(|m| m.name.as_str()),
            Some("memory")
        );
        // A first sync that already rescales says on what, too.
        let unsynced = ScaleSample {
            desired_replicas: None,
            current_replicas: None,
            ..next.clone()
        };
        let first = changes(Some(&unsynced), &next);
        assert!(
            first[0].starts_with("HPA synced for the first time: desired 3 on memory: memory"),
            "{first:?}"
        );
    }
}
