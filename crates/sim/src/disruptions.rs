//! Disruptions timed from the start of each scenario's load: what
//! `[[backend.local.disruptions]]` plays, so a stress config can rehearse a flaky
//! cluster end to end, not only the tests that drive [`crate::SimCluster`] by hand.
//!
//! "The start of the load" is, as the cluster sees it, the first connection through
//! a Service's node port since that Service took the port ([`crate::nodeport`]
//! reports it): each scenario runs in a namespace of its own with its own Service,
//! prepared before, and nothing connects to it before the load does. Each
//! disruption is played once per such start, `after_s` later, against the HPA of the
//! Service's namespace.
//!
//! The pod disruptions (`pod-kill`, `pod-evict`) pick the newest ready pod of that
//! HPA's target, as a scale-up's newest replica is the one a node pressure or a
//! drain most often meets mid-scenario; with no ready pod there is nothing to
//! disrupt, and the log says so.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use serde_json::Value;

use super::api::ApiState;
use super::api::resource::{FieldSelector, Resource, Selector, match_labels_string};
use super::api::store::Key;
use super::deployments::is_ready;

/// One disruption of `[[backend.local.disruptions]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disruption {
    /// `metrics-server-restart` (its APIService unavailable, PodMetrics gone, back
    /// `down_s` later plus two scrapes), `end-watches` (every watch stream ended),
    /// `end-watches-410` (ended, and the history compacted: resumes get 410 Gone),
    /// `pod-kill` (the newest ready pod's container SIGKILLed: the kubelet sees exit
    /// 137 and restarts it) or `pod-evict` (the newest ready pod evicted through the
    /// Eviction API: terminated gracefully, replaced by its Deployment).
    pub kind: DisruptionKind,
    /// Seconds after each scenario's load starts (its HPA applied).
    #[serde(default)]
    pub after_s: f64,
    /// `metrics-server-restart`: how long it stays down before its new process starts.
    #[serde(default)]
    pub down_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DisruptionKind {
    MetricsServerRestart,
    EndWatches,
    #[serde(rename = "end-watches-410")]
    EndWatches410,
    PodKill,
    PodEvict,
}

impl Disruption {
    /// Whether it can be played; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=3600.0).contains(&self.after_s) {
            return Err(format!("after_s = {}: 0 to 3600 seconds", self.after_s));
        }
        match (self.kind, self.down_s) {
            (DisruptionKind::MetricsServerRestart, None) => {
                Err("down_s: a metrics-server restart needs how long it is down".into())
            }
            (DisruptionKind::MetricsServerRestart, Some(d)) if !(0.0..=3600.0).contains(&d) => {
                Err(format!("down_s = {d}: 0 to 3600 seconds"))
            }
            (
                DisruptionKind::EndWatches
                | DisruptionKind::EndWatches410
                | DisruptionKind::PodKill
                | DisruptionKind::PodEvict,
                Some(_),
            ) => Err("down_s: only a metrics-server restart has one".into()),
            _ => Ok(()),
        }
    }
}

/// What a disruption acts on.
pub struct Targets {
    pub state: Arc<ApiState>,
    pub metrics_restarts: tokio::sync::mpsc::UnboundedSender<Duration>,
}

/// Plays `plan` after every load start reported on `arrivals` (`namespace/service`)
/// until `cancel`.
pub async fn run(
    plan: Vec<Disruption>,
    targets: Targets,
    mut arrivals: tokio::sync::mpsc::UnboundedReceiver<String>,
    cancel: CancellationToken,
) {
    let targets = Arc::new(targets);
    loop {
        let service = tokio::select! {
            () = cancel.cancelled() => return,
            arrived = arrivals.recv() => match arrived {
                Some(service) => service,
                None => return,
            },
        };
        if plan.is_empty() {
            continue;
        }
        let namespace = service.split_once('/').map_or("", |(ns, _)| ns);
        let Some(hpa) = hpa_in(&targets.state, namespace) else {
            tracing::warn!(
                "disruptions: load started on {service}, but its namespace has no HPA; \
                 nothing played"
            );
            continue;
        };
        tracing::info!("disruptions: load started on {service}; timing them from now");
        for disruption in plan.clone() {
            let targets = Arc::clone(&targets);
            let cancel = cancel.clone();
            let hpa = hpa.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_secs_f64(disruption.after_s)) => {
                        play(&disruption, &targets, &hpa);
                    }
                }
            });
        }
    }
}

/// Plays one disruption; `hpa` (`namespace/name`) is the HPA whose re-creation
/// timed it, whose target's pods the pod disruptions act on.
fn play(disruption: &Disruption, targets: &Targets, hpa: &str) {
    tracing::info!("disruption: {:?}", disruption.kind);
    match disruption.kind {
        DisruptionKind::PodKill | DisruptionKind::PodEvict => {
            let Some(victim) = newest_ready_pod(&targets.state, hpa) else {
                tracing::warn!(
                    "disruption {:?}: no ready pod of {hpa}'s target to disrupt; nothing done",
                    disruption.kind
                );
                return;
            };
            if disruption.kind == DisruptionKind::PodEvict {
                evict(&targets.state, &victim);
            } else {
                kill(&victim);
            }
        }
        DisruptionKind::MetricsServerRestart => {
            let down = Duration::from_secs_f64(disruption.down_s.unwrap_or(0.0));
            // The scraper ends only with the cluster; then there is nothing to restart.
            let _ = targets.metrics_restarts.send(down);
        }
        DisruptionKind::EndWatches => targets.state.end_watches(false),
        DisruptionKind::EndWatches410 => targets.state.end_watches(true),
    }
}

/// Evicts `victim` through the Eviction API, as a drain would.
fn evict(state: &ApiState, victim: &Victim) {
    match state.evict_pod(&victim.namespace, &victim.name) {
        Ok(()) => tracing::info!("disruption: evicted pod {}", victim.name),
        Err(e) => tracing::warn!("disruption: evict pod {}: {e}", victim.name),
    }
}

/// SIGKILLs `victim`'s container, as the kernel's OOM killer or a crash would: the
/// kubelet sees exit 137 and restarts it.
fn kill(victim: &Victim) {
    let Some(pid) = victim.pid else {
        tracing::warn!(
            "disruption pod-kill: pod {} has no running container; nothing done",
            victim.name
        );
        return;
    };
    match i32::try_from(pid).map(|pid| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
    }) {
        Ok(Ok(())) => tracing::info!(
            "disruption: SIGKILLed the container of pod {} (pid {pid})",
            victim.name
        ),
        Ok(Err(e)) => tracing::warn!("disruption: kill pid {pid} of pod {}: {e}", victim.name),
        Err(_) => tracing::warn!("disruption: pid {pid} of pod {} is no pid", victim.name),
    }
}

/// A pod a disruption acts on.
#[derive(Debug, PartialEq)]
struct Victim {
    namespace: String,
    name: String,
    /// Its container's process (`containerID` `local://<pid>`), when running.
    pid: Option<u32>,
}

/// The newest ready, not terminating pod of HPA `hpa`'s (`namespace/name`) target
/// Deployment, by creation time then name.
fn newest_ready_pod(state: &ApiState, hpa: &str) -> Option<Victim> {
    let (namespace, name) = hpa.split_once('/')?;
    let hpa = state.store.get(&Key::new(
        Resource::HorizontalPodAutoscaler,
        namespace,
        name,
    ))?;
    let deployment = hpa["spec"]["scaleTargetRef"]["name"].as_str()?;
    let deployment = state
        .store
        .get(&Key::new(Resource::Deployment, namespace, deployment))?;
    let selector = Selector::parse(&match_labels_string(&deployment["spec"]["selector"])).ok()?;
    let (pods, _) = state.store.list(
        Resource::Pod,
        Some(namespace),
        &selector,
        &FieldSelector::default(),
    );
    pods.iter()
        .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null() && is_ready(pod))
        .max_by(|a, b| {
            let created = |p: &Value| {
                p["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            };
            let name = |p: &Value| p["metadata"]["name"].as_str().unwrap_or("").to_string();
            (created(a), name(a)).cmp(&(created(b), name(b)))
        })
        .map(|pod| Victim {
            namespace: namespace.to_string(),
            name: pod["metadata"]["name"].as_str().unwrap_or("").to_string(),
            pid: pod["status"]["containerStatuses"][0]["containerID"]
                .as_str()
                .and_then(|id| id.strip_prefix("local://"))
                .and_then(|pid| pid.parse().ok()),
        })
}

/// `namespace/name` of the HPA in `namespace` (the first by name, if several).
fn hpa_in(state: &ApiState, namespace: &str) -> Option<String> {
    let (hpas, _) = state.store.list(
        Resource::HorizontalPodAutoscaler,
        Some(namespace),
        &Selector::default(),
        &FieldSelector::default(),
    );
    hpas.iter()
        .filter_map(|h| h["metadata"]["name"].as_str())
        .min()
        .map(|name| format!("{namespace}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disruption_is_checked_naming_its_field() {
        let restart = Disruption {
            kind: DisruptionKind::MetricsServerRestart,
            after_s: 2.0,
            down_s: Some(5.0),
        };
        assert_eq!(restart.check(), Ok(()));
        let without_down = Disruption {
            down_s: None,
            ..restart.clone()
        };
        assert!(
            without_down
                .check()
                .expect_err("refused")
                .starts_with("down_s")
        );
        let watches_with_down = Disruption {
            kind: DisruptionKind::EndWatches,
            ..restart.clone()
        };
        assert!(
            watches_with_down
                .check()
                .expect_err("refused")
                .starts_with("down_s")
        );
        let negative = Disruption {
            after_s: -1.0,
            ..restart
        };
        assert!(
            negative
                .check()
                .expect_err("refused")
                .starts_with("after_s")
        );
        let parsed: Disruption =
            serde_json::from_value(serde_json::json!({"kind": "end-watches-410", "after_s": 3}))
                .expect("parses");
        assert_eq!(parsed.kind, DisruptionKind::EndWatches410);
        let kill: Disruption =
            serde_json::from_value(serde_json::json!({"kind": "pod-kill", "after_s": 6}))
                .expect("parses");
        assert_eq!((kill.kind, kill.check()), (DisruptionKind::PodKill, Ok(())));
        let evict_with_down = Disruption {
            kind: DisruptionKind::PodEvict,
            after_s: 1.0,
            down_s: Some(2.0),
        };
        assert!(
            evict_with_down
                .check()
                .expect_err("refused")
                .starts_with("down_s")
        );
    }

    fn pod(name: &str, created: &str, app: &str, ready: bool, terminating: bool) -> Value {
        let mut pod = serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"app": app},
                         "creationTimestamp": created},
            "spec": {"terminationGracePeriodSeconds": 30},
            "status": {
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "containerStatuses": [{"name": "c", "containerID": format!("local://{}", created.len() * 100 + name.len())}],
            },
        });
        if terminating {
            pod["metadata"]["deletionTimestamp"] = serde_json::json!("2026-01-01T00:00:09Z");
        }
        pod
    }

    /// The pod disruptions meet the newest ready pod of the HPA's target, never a
    /// terminating, unready or unrelated one; eviction marks and deletes it as the
    /// Eviction API does.
    #[test]
    fn pod_disruptions_pick_the_newest_ready_pod_of_the_hpas_target() {
        let store = Arc::new(crate::api::store::Store::default());
        let state = ApiState::new(Arc::clone(&store), Arc::default());
        let put = |resource: Resource, object: Value| {
            // The store stamps creation times; the test's own order is restored after.
            let name = object["metadata"]["name"]
                .as_str()
                .expect("name")
                .to_string();
            let created = object["metadata"]["creationTimestamp"].clone();
            store.put(&Key::new(resource, "ns", &name), object);
            store.update(&Key::new(resource, "ns", &name), |o| {
                o["metadata"]["creationTimestamp"] = created;
            });
        };
        put(
            Resource::HorizontalPodAutoscaler,
            serde_json::json!({"metadata": {"name": "hpa", "namespace": "ns"},
                               "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}}}),
        );
        put(
            Resource::Deployment,
            serde_json::json!({"metadata": {"name": "web", "namespace": "ns"},
                               "spec": {"selector": {"matchLabels": {"app": "web"}}}}),
        );
        assert_eq!(newest_ready_pod(&state, "ns/hpa"), None, "no pod yet");
        put(
            Resource::Pod,
            pod("web-a", "2026-01-01T00:00:01Z", "web", true, false),
        );
        put(
            Resource::Pod,
            pod("web-b", "2026-01-01T00:00:02Z", "web", true, false),
        );
        put(
            Resource::Pod,
            pod("web-c", "2026-01-01T00:00:03Z", "web", false, false),
        );
        put(
            Resource::Pod,
            pod("web-d", "2026-01-01T00:00:04Z", "web", true, true),
        );
        put(
            Resource::Pod,
            pod("other", "2026-01-01T00:00:05Z", "other", true, false),
        );
        let victim = newest_ready_pod(&state, "ns/hpa").expect("a ready pod");
        assert_eq!(victim.name, "web-b");
        assert_eq!(victim.pid, Some(2005));
        assert_eq!(newest_ready_pod(&state, "ns/no-such-hpa"), None);

        state.evict_pod("ns", "web-b").expect("evicted");
        let evicted = store
            .get(&Key::new(Resource::Pod, "ns", "web-b"))
            .expect("still terminating");
        assert!(!evicted["metadata"]["deletionTimestamp"].is_null());
        assert!(
            evicted["status"]["conditions"]
                .as_array()
                .expect("conditions")
                .iter()
                .any(|c| c["type"] == "DisruptionTarget" && c["reason"] == "EvictionByEvictionAPI")
        );
        assert_eq!(
            newest_ready_pod(&state, "ns/hpa").map(|v| v.name),
            Some("web-a".into())
        );
        assert!(state.evict_pod("ns", "no-such-pod").is_err());
    }
}
