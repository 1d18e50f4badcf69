//! metrics-server of the simulated cluster: a scraper of the kubelet's cumulative
//! CPU counters every `--metric-resolution`, serving PodMetrics through the API.
//!
//! As metrics-server does (`pkg/storage/pod.go`): a pod has PodMetrics only once two
//! scrapes saw it (its CPU is a rate between two points), or after one scrape when
//! its container is between 10 s and one resolution old (a synthetic zero at its
//! start); the `window` is the time between the two points; a restarted container
//! starts over. The metrics APIService becomes Available once the server has scraped
//! twice (its readiness check, `pkg/storage/storage.go`), with the aggregator's
//! reason and message.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::api::resource::{FieldSelector, Resource, Selector};
use super::api::store::{Key, Store, now_rfc3339, rfc3339};
use super::kubelet::{PodStats, Stats};
use super::phases::PhaseLog;

/// metrics-server's `freshContainerMinMetricsResolution`.
const FRESH_CONTAINER_MIN: Duration = Duration::from_secs(10);

pub const API_SERVICE: &str = "v1beta1.metrics.k8s.io";

/// Two points of one pod.
#[derive(Debug, Clone, Copy)]
struct Points {
    prev: Option<PodStats>,
    last: PodStats,
}

/// When the scraper runs: every `resolution`, the first time `first_after` the start.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub resolution: Duration,
    pub first_after: Duration,
}

/// Restarts asked for by a fault ([`crate::SimCluster::restart_metrics_server`]): how
/// long metrics-server stays down before its new process starts scraping.
pub type Restarts = tokio::sync::mpsc::UnboundedReceiver<Duration>;

/// Runs the scraper until `cancel`.
pub async fn run(
    store: Arc<Store>,
    stats: Stats,
    schedule: Schedule,
    phases: Arc<PhaseLog>,
    mut restarts: Restarts,
    cancel: CancellationToken,
) {
    let resolution = schedule.resolution;
    let mut points: BTreeMap<Key, (String, Points)> = BTreeMap::new();
    let mut scrapes = 0u32;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + schedule.first_after,
        resolution,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            Some(down) = restarts.recv() => {
                // What a restart loses: the aggregator marks the APIService
                // unavailable (no endpoints), the new process has no points, and
                // serves again only after two scrapes, the first at its start.
                go_down(&store);
                points.clear();
                scrapes = 0;
                tracing::info!("metrics-server: restarting, down for {down:?}");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(down) => {}
                }
                tick.reset_immediately();
            }
            _ = tick.tick() => {
                scrape(&store, &stats, resolution, &mut points);
                phases.scraped(std::time::SystemTime::now());
                scrapes += 1;
                if scrapes == 2 {
                    mark_available(&store);
                }
            }
        }
    }
}

fn scrape(
    store: &Store,
    stats: &Stats,
    resolution: Duration,
    points: &mut BTreeMap<Key, (String, Points)>,
) {
    let now: BTreeMap<Key, (String, PodStats)> =
        stats.lock().unwrap_or_else(PoisonError::into_inner).clone();
    points.retain(|key, _| now.contains_key(key));
    for (key, (container, sample)) in &now {
        let next = match points.get(key) {
            // The same container, a later reading: the previous last becomes prev.
            Some((_, p))
                if p.last.container_started == sample.container_started
                    && sample.at > p.last.at =>
            {
                Points {
                    prev: Some(p.last),
                    last: *sample,
                }
            }
            Some((_, p)) if p.last.container_started == sample.container_started => *p,
            // New (or restarted): a synthetic zero at its start when it is 10 s to
            // one resolution old, else wait for a second scrape.
            _ => {
                let age = sample
                    .at
                    .duration_since(sample.container_started)
                    .unwrap_or_default();
                let fresh = age >= FRESH_CONTAINER_MIN && age < resolution;
                Points {
                    prev: fresh.then_some(PodStats {
                        cpu: Duration::ZERO,
                        memory: sample.memory,
                        at: sample.container_started,
                        container_started: sample.container_started,
                    }),
                    last: *sample,
                }
            }
        };
        points.insert(key.clone(), (container.clone(), next));
    }
    // A pod without two points (gone, or new) has no PodMetrics.
    delete_pod_metrics(store, |pod| {
        points.get(pod).is_none_or(|(_, p)| p.prev.is_none())
    });
    for (key, (container, p)) in points.iter() {
        let Some(prev) = p.prev else { continue };
        let Some(pod) = store.get(key) else { continue };
        let window = p.last.at.duration_since(prev.at).unwrap_or_default();
        if window.is_zero() {
            continue;
        }
        let used = p.last.cpu.saturating_sub(prev.cpu);
        let nanocores = (used.as_nanos() as f64 / window.as_secs_f64()).round() as u64;
        let metric = json!({
            "metadata": {
                "name": key.name, "namespace": key.namespace,
                "creationTimestamp": now_rfc3339(),
                "labels": pod["metadata"]["labels"],
            },
            "timestamp": rfc3339(p.last.at),
            "window": format!("{}s", trim(window.as_secs_f64())),
            // Memory as metrics-server writes it: the latest working set, in the
            // largest exact binary unit (here Ki).
            "containers": [{"name": container, "usage": {
                "cpu": format!("{nanocores}n"),
                "memory": format!("{}Ki", p.last.memory.unwrap_or(0) / 1024),
            }}],
        });
        store.put(
            &Key::new(Resource::PodMetrics, &key.namespace, &key.name),
            metric,
        );
    }
}

/// `15.003` for a Go-style window.
fn trim(seconds: f64) -> String {
    let text = format!("{seconds:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The APIService metrics-server registers, before it serves (the aggregator cannot
/// reach it yet) and once it does.
pub fn api_service(available: bool) -> Value {
    let condition = if available {
        json!({"type": "Available", "status": "True", "lastTransitionTime": now_rfc3339(),
               "reason": "Passed", "message": "all checks passed"})
    } else {
        json!({"type": "Available", "status": "False", "lastTransitionTime": now_rfc3339(),
               "reason": "MissingEndpoints",
               "message": "endpointslices for service/metrics-server in \"kube-system\" have no addresses with port name \"https\""})
    };
    json!({
        "metadata": {"labels": {"k8s-app": "metrics-server"}},
        "spec": {
            "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443},
            "group": "metrics.k8s.io", "version": "v1beta1",
            "insecureSkipTLSVerify": true, "groupPriorityMinimum": 100, "versionPriority": 100,
        },
        "status": {"conditions": [condition]},
    })
}

/// metrics-server's pod is gone: its APIService unavailable, its PodMetrics with it.
fn go_down(store: &Store) {
    store.put(
        &Key::new(Resource::ApiService, "", API_SERVICE),
        api_service(false),
    );
    delete_pod_metrics(store, |_| true);
}

/// Deletes the PodMetrics of every pod (its `Pod` key) that `gone` says has none.
fn delete_pod_metrics(store: &Store, gone: impl Fn(&Key) -> bool) {
    let (existing, _) = store.list(
        Resource::PodMetrics,
        None,
        &Selector::default(),
        &FieldSelector::default(),
    );
    for metric in existing {
        let pod = Key::new(
            Resource::Pod,
            metric["metadata"]["namespace"].as_str().unwrap_or(""),
            metric["metadata"]["name"].as_str().unwrap_or(""),
        );
        if gone(&pod) {
            store.delete(&Key::new(Resource::PodMetrics, &pod.namespace, &pod.name));
        }
    }
}

fn mark_available(store: &Store) {
    store.put(
        &Key::new(Resource::ApiService, "", API_SERVICE),
        api_service(true),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_print_like_go_durations() {
        assert_eq!(trim(15.003), "15.003");
        assert_eq!(trim(1.0), "1");
    }
}
