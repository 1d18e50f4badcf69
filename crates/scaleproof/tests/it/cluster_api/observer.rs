//! The observer: HPA watch + pods + PodMetrics per tick, into ScaleSamples.
//!
//! Requests from the watch and from the ticks interleave, so these verifiers route
//! by path instead of expecting one fixed order; each route still asserts its request.

use std::time::Duration;

use http::Method;
use scaleproof::cluster::observer::{ObserverConfig, observe};
use scaleproof::scenario::Expectation;
use scaleproof::timeline::Condition;
use scaleproof::verdict::{self, Outcome, ReplicaBounds};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::mock::{self, Exchange, event, fixture, list, try_next, with};
use super::{SELECTOR_QUERY, target};

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/scaleproof/deployments/iris-classifier";
const HPAS: &str = "/apis/autoscaling/v2/namespaces/scaleproof/horizontalpodautoscalers";
const PODS: &str = "/api/v1/namespaces/scaleproof/pods";
const POD_METRICS: &str = "/apis/metrics.k8s.io/v1beta1/namespaces/scaleproof/pods";

/// How the scripted API answers the HPA watch.
#[derive(Clone, Copy)]
enum WatchScript {
    /// Open and silent: the HPA keeps the state of the initial list.
    Silent,
    /// Fails with an expired-resourceVersion error event.
    Errors,
    /// The HPA was just re-created by the reset: no status until the controller's
    /// first sync, which comes on the given tick and asks for 1 replica.
    FirstSyncOnTick(usize),
}

/// The HPA as the API server stores it right after a create: no status at all
/// (kubernetes `pkg/registry/autoscaling/horizontalpodautoscaler/strategy.go`,
/// `PrepareForCreate`, clears it).
fn hpa_before_first_sync() -> Value {
    let mut hpa = fixture("hpa.json");
    hpa.as_object_mut().expect("object").remove("status");
    hpa
}

/// The same HPA after its first sync under light load: 1 replica, 20 % CPU.
fn hpa_synced_at_one() -> Value {
    let hpa = with(fixture("hpa.json"), "/status/desiredReplicas", json!(1));
    let hpa = with(hpa, "/metadata/resourceVersion", json!("1500"));
    with(
        hpa,
        "/status/currentMetrics/0/resource/current",
        json!({"averageValue": "20m", "averageUtilization": 20}),
    )
}

/// Answers the observer's requests until it has sampled `ticks` times, then cancels
/// it. PodMetrics answer 404 (metrics API absent) on the first tick only.
async fn scripted_api(
    mut handle: mock::ApiHandle,
    watch: WatchScript,
    ticks: usize,
    cancel: CancellationToken,
) {
    let mut held: Vec<Exchange> = Vec::new();
    let mut metrics_requests = 0;
    let mut synced = false;
    while let Some(exchange) = try_next(&mut handle).await {
        assert_eq!(
            exchange.method,
            Method::GET,
            "{} {}",
            exchange.method,
            exchange.path
        );
        match exchange.path.as_str() {
            DEPLOYMENT => exchange.respond_ok(&fixture("deployment-ready.json")),
            HPAS if exchange.query.contains("watch=true") => match watch {
                WatchScript::Silent | WatchScript::FirstSyncOnTick(_) => held.push(exchange),
                WatchScript::Errors => exchange.respond_watch(&[event(
                    "ERROR",
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": "too old resource version: 1000 (1400)", "reason": "Expired", "code": 410}),
                )]),
            },
            HPAS => {
                let hpa = match watch {
                    WatchScript::FirstSyncOnTick(_) if synced => hpa_synced_at_one(),
                    WatchScript::FirstSyncOnTick(_) => hpa_before_first_sync(),
                    _ => fixture("hpa.json"),
                };
                exchange
                    .query_has("fieldSelector=metadata.name%3Diris-classifier-hpa")
                    .respond_ok(&list(
                        "HorizontalPodAutoscalerList",
                        "autoscaling/v2",
                        vec![hpa],
                    ))
            }
            PODS => exchange
                .query_has(SELECTOR_QUERY)
                .respond_ok(&list("PodList", "v1", vec![fixture("pod-ready.json")])),
            POD_METRICS => {
                metrics_requests += 1;
                let exchange = exchange.query_has(SELECTOR_QUERY);
                if metrics_requests == 1 {
                    exchange.respond_status(404, "NotFound", "the server could not find the requested resource");
                } else {
                    exchange.respond_ok(&list(
                        "PodMetricsList",
                        "metrics.k8s.io/v1beta1",
                        vec![fixture("pod-metrics.json")],
                    ));
                }
                if let WatchScript::FirstSyncOnTick(tick) = watch
                    && metrics_requests == tick
                    && let Some(open_watch) = held.pop()
                {
                    synced = true;
                    open_watch.respond_watch(&[event("MODIFIED", &hpa_synced_at_one())]);
                }
                if metrics_requests == ticks {
                    cancel.cancel();
                }
            }
            other => panic!("unexpected request GET {other}?{}", exchange.query),
        }
    }
}

fn config() -> ObserverConfig {
    ObserverConfig {
        target: target(),
        period: Duration::from_millis(20),
        started: tokio::time::Instant::now(),
    }
}

#[tokio::test]
async fn samples_hpa_status_pods_and_metrics_and_survives_an_absent_metrics_api() {
    let (client, handle) = mock::client();
    let cancel = CancellationToken::new();
    let verifier = mock::verifier(handle, {
        let cancel = cancel.clone();
        move |handle| scripted_api(handle, WatchScript::Silent, 3, cancel)
    });
    let observation = observe(client, config(), cancel).await;
    verifier.done().await;

    assert_eq!(
        observation.timeline.start_replicas,
        Some(1),
        "the Deployment's ready replicas at load start"
    );
    let samples = &observation.timeline.samples;
    assert_eq!(samples.len(), 3, "{samples:#?}");
    for pair in samples.windows(2) {
        assert!(pair[0].t_s <= pair[1].t_s, "time goes forward");
    }
    let first = &samples[0];
    assert_eq!(
        (
            first.desired_replicas,
            first.current_replicas,
            first.ready_replicas
        ),
        (Some(2), Some(1), 1)
    );
    assert_eq!(first.cpu_utilization_pct, Some(85));
    assert_eq!(first.cpu_target_pct, 50);
    assert_eq!(first.replicas.len(), 1);
    assert_eq!(first.replicas[0].name, "iris-classifier-7c9d8b6f5d-x2x7q");
    assert!(first.replicas[0].ready);
    assert_eq!(
        first.replicas[0].cpu_millicores, None,
        "metrics API was absent"
    );
    assert_eq!(samples[1].replicas[0].cpu_millicores, Some(172));
    assert_eq!(
        first.conditions[2],
        Condition {
            type_: "ScalingLimited".into(),
            status: "False".into(),
            reason: "DesiredWithinRange".into(),
            message: "the desired count is within the acceptable range".into(),
        }
    );
    assert!(
        observation
            .timeline
            .saw_condition("ScalingActive", "True", "ValidMetricFound")
    );
    assert_eq!(observation.warnings.len(), 1, "{:?}", observation.warnings);
    assert!(
        observation.warnings[0]
            .starts_with("metrics API (PodMetrics): API server answered 404 NotFound"),
        "{:?}",
        observation.warnings
    );
}

#[tokio::test]
async fn a_failing_hpa_watch_becomes_a_warning_and_sampling_goes_on() {
    let (client, handle) = mock::client();
    let cancel = CancellationToken::new();
    let verifier = mock::verifier(handle, {
        let cancel = cancel.clone();
        move |handle| scripted_api(handle, WatchScript::Errors, 4, cancel)
    });
    let observation = observe(client, config(), cancel).await;
    verifier.done().await;

    assert_eq!(observation.timeline.samples.len(), 4);
    assert!(
        observation
            .timeline
            .samples
            .iter()
            .all(|s| s.desired_replicas == Some(2))
    );
    assert!(
        observation
            .warnings
            .iter()
            .any(|w| w.starts_with("HPA watch:") && w.contains("too old resource version")),
        "{:?}",
        observation.warnings
    );
}

#[tokio::test]
async fn cancelled_before_the_hpa_is_seen_returns_an_empty_timeline() {
    let (client, handle) = mock::client();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let verifier = mock::verifier(handle, |mut handle| async move {
        // The observer may or may not have sent its first list before it noticed.
        while let Some(exchange) = try_next(&mut handle).await {
            drop(exchange);
        }
    });
    let observation = observe(client, config(), cancel).await;
    verifier.done().await;
    assert!(observation.timeline.is_empty());
}

/// The reset re-creates the HPA just before load. Until its first sync it has no
/// status; then it asks for 1, the replica the scenario started with. That is no
/// scale-up: `scale_up_within_s` and `min_peak_replicas` must fail (they passed when
/// an empty status read as 0 replicas and the first sync's 1 as a scale-up).
#[tokio::test]
async fn an_hpa_without_status_that_never_exceeds_one_replica_is_no_scale_up() {
    let (client, handle) = mock::client();
    let cancel = CancellationToken::new();
    let verifier = mock::verifier(handle, {
        let cancel = cancel.clone();
        move |handle| scripted_api(handle, WatchScript::FirstSyncOnTick(3), 6, cancel)
    });
    let observation = observe(client, config(), cancel).await;
    verifier.done().await;

    let timeline = &observation.timeline;
    assert_eq!(timeline.start_replicas, Some(1));
    assert!(timeline.samples.len() >= 5, "{:#?}", timeline.samples);
    let before_sync = &timeline.samples[0];
    assert_eq!(
        (before_sync.desired_replicas, before_sync.current_replicas),
        (None, None),
        "no status is not 0 replicas"
    );
    assert_eq!(
        timeline.samples.last().and_then(|s| s.desired_replicas),
        Some(1)
    );
    assert_eq!(timeline.first_scale_up_s(), None);

    let expectations = [
        Expectation::ScaleUpWithinS(45.0),
        Expectation::MinPeakReplicas(2),
    ];
    let load = scaleproof::fixtures::load(100, 100, &[10; 10], 50.0);
    let verdicts = verdict::judge(
        &expectations,
        &load,
        timeline,
        ReplicaBounds { min: 1, max: 3 },
    );
    let outcome = |check: &str| {
        verdicts
            .iter()
            .find(|v| v.check == check)
            .map(|v| (v.outcome, v.measured.clone()))
    };
    assert_eq!(
        outcome("scale_up_within_s"),
        Some((Outcome::Fail, "no scale-up".to_string()))
    );
    assert_eq!(
        outcome("min_peak_replicas").map(|o| o.0),
        Some(Outcome::Fail)
    );
}

// A replica killed mid-scenario comes back before the next sample shows more than a
// dip in the ready count; the timeline must say which container died and how.
#[test]
fn a_container_restart_becomes_an_event_naming_how_it_ended() {
    use k8s_openapi::api::core::v1::Pod;
    use scaleproof::cluster::observer::container_restarts;
    let pod = |restarts: i32, last: Value| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "iris-classifier-abc-1"},
            "status": {"containerStatuses": [{
                "name": "iris-server", "image": "iris-server:local", "imageID": "",
                "ready": true, "restartCount": restarts, "lastState": last,
            }]},
        }))
        .expect("a pod")
    };
    let since: k8s_openapi::jiff::Timestamp = "2026-12-06T02:59:00Z".parse().expect("a time");
    let mut seen = Default::default();
    // The first sighting records the count.
    assert!(container_restarts(&mut seen, &[pod(0, json!({}))], since).is_empty());
    assert!(container_restarts(&mut seen, &[pod(0, json!({}))], since).is_empty());
    let killed = json!({"terminated": {
        "exitCode": 137, "reason": "OOMKilled",
        "startedAt": "2026-12-06T03:00:00Z", "finishedAt": "2026-12-06T03:00:42Z",
    }});
    let said = container_restarts(&mut seen, &[pod(1, killed.clone())], since);
    assert_eq!(
        said,
        [
            "container iris-server of pod iris-classifier-abc-1 restarted (1 restart in all): \
          OOMKilled, exit code 137 (SIGKILL) after running 42 s"
        ]
    );
    assert!(
        container_restarts(&mut seen, &[pod(1, killed.clone())], since).is_empty(),
        "said once"
    );
    let crashed = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
    let said = container_restarts(&mut seen, &[pod(2, crashed)], since);
    assert_eq!(
        said,
        [
            "container iris-server of pod iris-classifier-abc-1 restarted (2 restarts in all): \
          Error, exit code 1"
        ]
    );

    // A pod first seen after its container died and came back between two samples:
    // said when the death came after the observation began, not for older restarts.
    let mut fresh = Default::default();
    let said = container_restarts(&mut fresh, &[pod(1, killed.clone())], since);
    assert_eq!(said.len(), 1, "{said:?}");
    let later: k8s_openapi::jiff::Timestamp = "2026-12-06T04:00:00Z".parse().expect("a time");
    let mut old = Default::default();
    assert!(container_restarts(&mut old, &[pod(1, killed)], later).is_empty());
}
