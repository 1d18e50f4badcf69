//! The HPA controller of the simulated cluster: the `scaleproof-hpa` port, driven the
//! way kube-controller-manager drives its algorithm.
//!
//! Queueing as upstream (`pkg/controller/podautoscaler/horizontal.go`): every HPA is
//! enqueued with a fixed delay of one sync period, so a new HPA is first reconciled
//! one period after it appears and has no status until then; after each reconcile it
//! is enqueued again. The controller's memory of an HPA (recommendations, scale
//! events) is keyed by namespace/name and forgotten only when a queued reconcile finds
//! the HPA gone: an HPA re-created before that inherits it. Each reconcile reads the
//! target's scale, its pods and their PodMetrics from the API, decides with the port,
//! writes the Deployment's `spec.replicas` through the scale subresource (as
//! `kube-controller-manager`), the HPA's status (`currentReplicas`, `desiredReplicas`,
//! `currentMetrics`, conditions with transition times, `lastScaleTime`), and the
//! events upstream writes (`SuccessfulRescale`, `FailedGetResourceMetric`, ...).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use scaleproof_hpa::{
    Autoscaler, ConditionStatus, ContainerInput, ContainerUsage, ControllerOptions, HpaSpec,
    PodInput, PodMetrics, PodPhase, ReadyCondition, parse_milli,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::api::ApiState;
use super::api::resource::{FieldSelector, Resource, Selector, match_labels_string};
use super::api::store::{Key, Store, now_rfc3339};
use super::events::{self, EventType};
use super::phases::PhaseLog;

const TICK: Duration = Duration::from_millis(100);
const COMPONENT: &str = "horizontal-pod-autoscaler";
/// The field manager of the controller's scale writes.
const MANAGER: &str = "kube-controller-manager";

/// One HPA in the controller's queue, and what the controller remembers of it.
struct Queued {
    next_sync: Instant,
    autoscaler: Option<Autoscaler>,
}

/// Runs the controller until `cancel`. `epoch` is the time pod and metric
/// timestamps are measured from (the port takes durations).
pub async fn run(
    state: Arc<ApiState>,
    options: ControllerOptions,
    epoch: SystemTime,
    phases: Arc<PhaseLog>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut queue: BTreeMap<Key, Queued> = BTreeMap::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => sync(&state, &options, epoch, &phases, &mut queue),
        }
    }
}

fn sync(
    state: &ApiState,
    options: &ControllerOptions,
    epoch: SystemTime,
    phases: &PhaseLog,
    queue: &mut BTreeMap<Key, Queued>,
) {
    let store = &state.store;
    let now = Instant::now();
    let (hpas, _) = store.list(
        Resource::HorizontalPodAutoscaler,
        None,
        &Selector::default(),
        &FieldSelector::default(),
    );
    for hpa in &hpas {
        let key = key_of(hpa);
        // AddRateLimited with a fixed interval: the first reconcile one period later.
        queue.entry(key).or_insert_with(|| Queued {
            next_sync: now + options.sync_period,
            autoscaler: None,
        });
    }
    let due: Vec<Key> = queue
        .iter()
        .filter(|(_, q)| q.next_sync <= now)
        .map(|(k, _)| k.clone())
        .collect();
    for key in due {
        let Some(hpa) = store.get(&key) else {
            // Gone: only now does the controller forget what it knew (reconcileKey).
            queue.remove(&key);
            continue;
        };
        let Some(queued) = queue.get_mut(&key) else {
            continue;
        };
        phases.synced(
            &format!("{}/{}", key.namespace, key.name),
            SystemTime::now(),
        );
        reconcile(state, &hpa, queued, options, epoch);
        queued.next_sync = Instant::now() + options.sync_period;
    }
}

fn key_of(object: &Value) -> Key {
    Key::new(
        Resource::HorizontalPodAutoscaler,
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or(""),
    )
}

fn reconcile(
    state: &ApiState,
    hpa: &Value,
    queued: &mut Queued,
    options: &ControllerOptions,
    epoch: SystemTime,
) {
    let store = &state.store;
    let key = key_of(hpa);
    let typed: Result<HorizontalPodAutoscaler, _> = serde_json::from_value(hpa.clone());
    let spec = match typed
        .as_ref()
        .map_err(|e| e.to_string())
        .and_then(|h| HpaSpec::try_from(h).map_err(|e| e.to_string()))
    {
        Ok(spec) => spec,
        Err(why) => {
            events::record(
                store,
                hpa,
                EventType::Warning,
                "FailedComputeMetricsReplicas",
                &why,
                COMPONENT,
            );
            return;
        }
    };
    match &mut queued.autoscaler {
        Some(autoscaler) => autoscaler.set_spec(spec),
        None => queued.autoscaler = Some(Autoscaler::new(spec, *options)),
    }
    let Some(autoscaler) = queued.autoscaler.as_mut() else {
        return;
    };

    let target_name = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or("");
    let deployment_key = Key::new(Resource::Deployment, &key.namespace, target_name);
    let Some(deployment) = store.get(&deployment_key) else {
        let message = format!("deployments.apps {target_name:?} not found");
        events::record(
            store,
            hpa,
            EventType::Warning,
            "FailedGetScale",
            &message,
            COMPONENT,
        );
        write_status(
            store,
            &key,
            hpa,
            None,
            &[(
                "AbleToScale",
                "False",
                "FailedGetScale",
                format!(
                    "the HPA controller was unable to get the target's current scale: {message}"
                ),
            )],
            None,
        );
        return;
    };
    let current = deployment["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as u32;
    let pods = pod_inputs(store, &deployment, epoch);
    let now = SystemTime::now().duration_since(epoch).unwrap_or_default();
    let decision = autoscaler.reconcile(now, current, &pods);

    let mut last_scale = hpa["status"]["lastScaleTime"].clone();
    if decision.desired_replicas != current {
        state.write_scale(
            &deployment_key,
            MANAGER,
            i64::from(decision.desired_replicas),
        );
        let reason = decision.rescale_reason.clone().unwrap_or_default();
        events::record(
            store,
            hpa,
            EventType::Normal,
            "SuccessfulRescale",
            &format!("New size: {}; reason: {reason}", decision.desired_replicas),
            COMPONENT,
        );
        last_scale = json!(now_rfc3339());
    }
    for c in &decision.conditions {
        if c.status == "False" && c.reason.starts_with("Failed") {
            let message = c
                .message
                .strip_prefix("the HPA was unable to compute the replica count: ")
                .unwrap_or(&c.message);
            events::record(
                store,
                hpa,
                EventType::Warning,
                &c.reason,
                message,
                COMPONENT,
            );
        }
    }
    let conditions: Vec<(&str, &str, &str, String)> = decision
        .conditions
        .iter()
        .map(|c| {
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_str(),
                c.message.clone(),
            )
        })
        .collect();
    let current_replicas = deployment["status"]["replicas"]
        .as_i64()
        .unwrap_or(current as i64);
    let metrics = serde_json::to_value(decision.current_metrics()).unwrap_or(Value::Null);
    write_status(
        store,
        &key,
        hpa,
        Some((current_replicas, decision.desired_replicas, metrics)),
        &conditions,
        Some(last_scale),
    );
}

/// Writes the HPA's status, keeping a condition's transition time while its status
/// stays the same.
fn write_status(
    store: &Store,
    key: &Key,
    hpa: &Value,
    counts: Option<(i64, u32, Value)>,
    conditions: &[(&str, &str, &str, String)],
    last_scale: Option<Value>,
) {
    let now = now_rfc3339();
    let previous = hpa["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|(type_, status, reason, message)| {
            let since = previous
                .iter()
                .find(|c| c["type"] == json!(type_) && c["status"] == json!(status))
                .map_or(now.clone(), |c| c["lastTransitionTime"].as_str().unwrap_or(&now).to_string());
            json!({"type": type_, "status": status, "lastTransitionTime": since, "reason": reason, "message": message})
        })
        .collect();
    let mut status = hpa["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    if let Some((current, desired, metrics)) = counts {
        status["currentReplicas"] = json!(current);
        status["desiredReplicas"] = json!(desired);
        // No metrics is a nil slice upstream: `null`, the field has no omitempty.
        status["currentMetrics"] = if metrics.as_array().is_some_and(|m| !m.is_empty()) {
            metrics
        } else {
            Value::Null
        };
    }
    if let Some(t) = last_scale.filter(|t| !t.is_null()) {
        status["lastScaleTime"] = t;
    }
    status["conditions"] = Value::Array(conditions);
    store.update(key, |h| h["status"] = status);
}

/// The target's pods as the port takes them: phase, deletion, the Ready condition,
/// start time, the containers' requests and the pod's PodMetrics.
fn pod_inputs(store: &Store, deployment: &Value, epoch: SystemTime) -> Vec<PodInput> {
    let namespace = deployment["metadata"]["namespace"].as_str().unwrap_or("");
    let selector = match_labels_string(&deployment["spec"]["selector"]);
    let labels = Selector::parse(&selector).unwrap_or_default();
    let (pods, _) = store.list(
        Resource::Pod,
        Some(namespace),
        &labels,
        &FieldSelector::default(),
    );
    let (metrics, _) = store.list(
        Resource::PodMetrics,
        Some(namespace),
        &labels,
        &FieldSelector::default(),
    );
    let since_epoch = |text: &Value| -> Option<Duration> {
        let parsed = time::OffsetDateTime::parse(
            text.as_str()?,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?;
        SystemTime::from(parsed)
            .duration_since(epoch)
            .ok()
            .or(Some(Duration::ZERO))
    };
    pods.iter()
        .map(|pod| {
            let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
            let phase = match pod["status"]["phase"].as_str() {
                Some("Pending") => PodPhase::Pending,
                Some("Running") => PodPhase::Running,
                Some("Succeeded") => PodPhase::Succeeded,
                Some("Failed") => PodPhase::Failed,
                _ => PodPhase::Unknown,
            };
            let ready = pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .map(|c| ReadyCondition {
                    status: match c["status"].as_str() {
                        Some("True") => ConditionStatus::True,
                        Some("False") => ConditionStatus::False,
                        _ => ConditionStatus::Unknown,
                    },
                    last_transition: since_epoch(&c["lastTransitionTime"]).unwrap_or_default(),
                });
            let containers = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| ContainerInput {
                    name: c["name"].as_str().unwrap_or("").to_string(),
                    cpu_request_millicores: c["resources"]["requests"]["cpu"]
                        .as_str()
                        .and_then(parse_milli),
                    memory_request_bytes: c["resources"]["requests"]["memory"]
                        .as_str()
                        .and_then(parse_milli)
                        .map(|m| m / 1000),
                })
                .collect();
            let sample = metrics
                .iter()
                .find(|m| m["metadata"]["name"] == json!(name))
                .map(|m| PodMetrics {
                    timestamp: since_epoch(&m["timestamp"]).unwrap_or_default(),
                    window: m["window"]
                        .as_str()
                        .and_then(go_duration)
                        .unwrap_or_default(),
                    containers: m["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| ContainerUsage {
                            name: c["name"].as_str().unwrap_or("").to_string(),
                            cpu_millicores: c["usage"]["cpu"].as_str().and_then(parse_milli),
                            memory_bytes: c["usage"]["memory"]
                                .as_str()
                                .and_then(parse_milli)
                                .map(|m| m / 1000),
                        })
                        .collect(),
                });
            PodInput {
                name,
                phase,
                deleted: !pod["metadata"]["deletionTimestamp"].is_null(),
                ready,
                start_time: since_epoch(&pod["status"]["startTime"]),
                containers,
                metrics: sample,
            }
        })
        .collect()
}

/// A Go duration as metrics-server writes a window (`15.003s`, `1m0.5s`).
fn go_duration(text: &str) -> Option<Duration> {
    let (minutes, rest) = match text.split_once('m') {
        Some((m, rest)) if !m.is_empty() && rest.ends_with('s') => (m.parse::<u64>().ok()?, rest),
        _ => (0, text),
    };
    let seconds: f64 = rest.strip_suffix('s')?.parse().ok()?;
    Some(Duration::from_secs(minutes * 60) + Duration::try_from_secs_f64(seconds).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_as_metrics_server_writes_them() {
        assert_eq!(go_duration("15.003s"), Some(Duration::from_millis(15_003)));
        assert_eq!(go_duration("1m0.5s"), Some(Duration::from_millis(60_500)));
        assert_eq!(go_duration("soon"), None);
    }
}
