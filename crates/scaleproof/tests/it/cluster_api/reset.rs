//! Reset between scenarios: the state of a fresh deploy before every scenario. The HPA
//! stays deleted for two sync periods (the controller forgets it only then), the
//! Deployment is back at one ready pod, and that pod is idle in PodMetrics.

use std::time::Duration;

use http::Method;
use scaleproof::cluster::reset::{ResetTimings, reset};
use scaleproof::cluster::{ClusterError, HpaOverrides};
use serde_json::{Value, json};

use super::mock::{self, ApiHandle, fixture, list, next, no_more_requests, with};
use super::{NS, SELECTOR_QUERY, prepared};

const HPA: &str =
    "/apis/autoscaling/v2/namespaces/scaleproof/horizontalpodautoscalers/iris-classifier-hpa";
const PODS: &str = "/api/v1/namespaces/scaleproof/pods";
const POD_METRICS: &str = "/apis/metrics.k8s.io/v1beta1/namespaces/scaleproof/pods";
const SCALE: &str = "/apis/apps/v1/namespaces/scaleproof/deployments/iris-classifier/scale";
/// k8s/: 100m request, HPA target 50 % -> the pod is idle below 50m.
const CPU_REQUEST: u64 = 100;

fn timings() -> ResetTimings {
    ResetTimings {
        settle_timeout: Duration::from_secs(5),
        poll: Duration::from_millis(10),
        hpa_sync_period: Duration::from_millis(1),
    }
}

/// The remaining pod's PodMetrics at `cpu`, as metrics-server lists them.
fn pod_metrics_at(cpu: &str) -> Value {
    list(
        "PodMetricsList",
        "metrics.k8s.io/v1beta1",
        vec![with(
            fixture("pod-metrics.json"),
            "/containers/0/usage/cpu",
            json!(cpu),
        )],
    )
}

async fn answer_delete_and_scale(handle: &mut ApiHandle) {
    next(handle)
        .await
        .expect(Method::DELETE, HPA)
        .respond_ok(&fixture("hpa.json"));
    next(handle).await.expect(Method::PATCH, SCALE).respond_ok(&json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "iris-classifier", "namespace": NS},
        "spec": {"replicas": 1}, "status": {"replicas": 1, "selector": "app.kubernetes.io/name=iris-classifier"}
    }));
}

#[tokio::test]
async fn deletes_hpa_scales_to_one_waits_for_one_ready_pod_and_reapplies_with_overrides() {
    let terminating = with(
        with(
            fixture("pod-ready.json"),
            "/metadata/name",
            json!("iris-classifier-7c9d8b6f5d-9kq2m"),
        ),
        "/metadata/uid",
        json!("9b1f2c3d-0000-4000-8000-000000000002"),
    );
    let mut terminating = terminating;
    terminating["metadata"]["deletionTimestamp"] = json!("2026-11-28T10:05:00Z");
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, move |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::DELETE, HPA)
            .respond_ok(&fixture("hpa.json"));
        let scale = next(&mut handle)
            .await
            .expect(
                Method::PATCH,
                "/apis/apps/v1/namespaces/scaleproof/deployments/iris-classifier/scale",
            )
            .content_type_is("application/merge-patch+json");
        assert_eq!(scale.body, json!({"spec": {"replicas": 1}}));
        scale.respond_ok(&json!({
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": "iris-classifier", "namespace": NS},
            "spec": {"replicas": 1}, "status": {"replicas": 2, "selector": "app.kubernetes.io/name=iris-classifier"}
        }));
        // A terminating pod still holds CPU: not settled yet.
        next(&mut handle)
            .await
            .expect(Method::GET, PODS)
            .query_has(SELECTOR_QUERY)
            .respond_ok(&list(
                "PodList",
                "v1",
                vec![fixture("pod-ready.json"), terminating],
            ));
        next(&mut handle)
            .await
            .expect(Method::GET, PODS)
            .respond_ok(&list("PodList", "v1", vec![fixture("pod-ready.json")]));
        next(&mut handle)
            .await
            .expect(Method::GET, POD_METRICS)
            .query_has(SELECTOR_QUERY)
            .respond_ok(&pod_metrics_at("3m"));
        let hpa = next(&mut handle)
            .await
            .expect(Method::PATCH, HPA)
            .content_type_is("application/apply-patch+yaml")
            .query_has("fieldManager=scaleproof")
            .query_has("force=true");
        assert_eq!(hpa.body["spec"]["maxReplicas"], 1);
        assert_eq!(hpa.body["metadata"]["namespace"], NS);
        hpa.respond_ok(&fixture("hpa.json"));
        no_more_requests(&mut handle).await;
    });

    let base = prepared(&HpaOverrides::default());
    let overrides = HpaOverrides {
        max_replicas: Some(1),
        ..HpaOverrides::default()
    };
    let report = reset(
        &client,
        &base.target,
        &base.hpa,
        &overrides,
        CPU_REQUEST,
        timings(),
    )
    .await
    .expect("reset succeeds");
    assert_eq!(report.idle_cpu_millicores, Some(3));
    assert_eq!(report.cpu_threshold_millicores, Some(50));
    drop(client);
    verifier.done().await;
}

/// The controller forgets a deleted HPA's recommendations only when its queued
/// reconcile (one sync period later) finds it gone: re-applied sooner, the new HPA
/// inherits the old stabilization window. So nothing is re-applied before two sync
/// periods have passed since the delete, even when the pods settled at once.
#[tokio::test(start_paused = true)]
async fn the_hpa_stays_deleted_for_two_sync_periods() {
    // Short enough for the verifier's own limit, which paused time also advances.
    let sync_period = Duration::from_secs(2);
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, move |mut handle| async move {
        let deleted = tokio::time::Instant::now();
        answer_delete_and_scale(&mut handle).await;
        next(&mut handle)
            .await
            .expect(Method::GET, PODS)
            .respond_ok(&list("PodList", "v1", vec![fixture("pod-ready.json")]));
        next(&mut handle)
            .await
            .expect(Method::GET, POD_METRICS)
            .respond_ok(&pod_metrics_at("3m"));
        let apply = next(&mut handle).await.expect(Method::PATCH, HPA);
        assert!(
            deleted.elapsed() >= sync_period * 2,
            "re-applied {:?} after the delete, before two sync periods",
            deleted.elapsed()
        );
        apply.respond_ok(&fixture("hpa.json"));
    });
    let base = prepared(&HpaOverrides::default());
    let slow_controller = ResetTimings {
        settle_timeout: Duration::from_secs(60),
        poll: Duration::from_secs(1),
        hpa_sync_period: sync_period,
    };
    let report = reset(
        &client,
        &base.target,
        &base.hpa,
        &HpaOverrides::default(),
        CPU_REQUEST,
        slow_controller,
    )
    .await
    .expect("reset succeeds");
    assert!(report.took >= sync_period * 2, "{report:?}");
    verifier.done().await;
}

/// metrics-server's last window still holds the previous scenario's load right after
/// the scale-down: the next scenario would start warm (its first sync scales up at
/// once). The reset waits until the remaining pod's CPU is below the HPA's target.
#[tokio::test]
async fn the_remaining_pod_must_be_idle_before_the_hpa_returns() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        answer_delete_and_scale(&mut handle).await;
        next(&mut handle)
            .await
            .expect(Method::GET, PODS)
            .respond_ok(&list("PodList", "v1", vec![fixture("pod-ready.json")]));
        // Still warm from the last scenario, then the metrics API answers 503 once
        // (aggregated APIs do that), then idle.
        next(&mut handle)
            .await
            .expect(Method::GET, POD_METRICS)
            .respond_ok(&pod_metrics_at("172403911n"));
        next(&mut handle)
            .await
            .expect(Method::GET, POD_METRICS)
            .respond_status(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            );
        next(&mut handle)
            .await
            .expect(Method::GET, POD_METRICS)
            .respond_ok(&pod_metrics_at("12m"));
        next(&mut handle)
            .await
            .expect(Method::PATCH, HPA)
            .respond_ok(&fixture("hpa.json"));
        no_more_requests(&mut handle).await;
    });
    let base = prepared(&HpaOverrides::default());
    let report = reset(
        &client,
        &base.target,
        &base.hpa,
        &HpaOverrides::default(),
        CPU_REQUEST,
        timings(),
    )
    .await
    .expect("reset succeeds once idle");
    assert_eq!(report.idle_cpu_millicores, Some(12));
    drop(client);
    verifier.done().await;
}

#[tokio::test]
async fn a_pod_that_never_cools_down_times_out_naming_its_cpu() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        answer_delete_and_scale(&mut handle).await;
        next(&mut handle)
            .await
            .expect(Method::GET, PODS)
            .respond_ok(&list("PodList", "v1", vec![fixture("pod-ready.json")]));
        while let Some(exchange) = mock::try_next(&mut handle).await {
            exchange
                .expect(Method::GET, POD_METRICS)
                .respond_ok(&pod_metrics_at("172403911n"));
        }
    });
    let base = prepared(&HpaOverrides::default());
    let short = ResetTimings {
        settle_timeout: Duration::from_millis(200),
        ..timings()
    };
    let err = reset(
        &client,
        &base.target,
        &base.hpa,
        &HpaOverrides::default(),
        CPU_REQUEST,
        short,
    )
    .await
    .expect_err("never idle");
    drop(client);
    verifier.done().await;
    let message = err.to_string();
    assert!(
        message.contains("below the HPA's target (50m)"),
        "{message}"
    );
    assert!(
        message.contains("last seen: iris-classifier-7c9d8b6f5d-x2x7q at 172m CPU, target 50m"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_hpa_is_fine_but_a_pod_that_never_settles_times_out() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::DELETE, HPA)
            .respond_status(
                404,
                "NotFound",
                "horizontalpodautoscalers.autoscaling \"iris-classifier-hpa\" not found",
            );
        next(&mut handle)
            .await
            .expect(Method::PATCH, "/apis/apps/v1/namespaces/scaleproof/deployments/iris-classifier/scale")
            .respond_ok(&json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": "iris-classifier", "namespace": NS}, "spec": {"replicas": 1}}));
        // The only pod never turns ready, until the client gives up.
        while let Some((request, send)) = handle.next_request().await {
            assert_eq!(request.uri().path(), PODS);
            let body = serde_json::to_vec(&list(
                "PodList",
                "v1",
                vec![fixture("pod-image-pull-backoff.json")],
            ))
            .expect("json");
            send.send_response(http::Response::new(kube::client::Body::from(body)));
        }
    });
    let base = prepared(&HpaOverrides::default());
    let short = ResetTimings {
        settle_timeout: Duration::from_millis(100),
        ..timings()
    };
    let err = reset(
        &client,
        &base.target,
        &base.hpa,
        &HpaOverrides::default(),
        CPU_REQUEST,
        short,
    )
    .await
    .expect_err("never settles");
    drop(client);
    verifier.done().await;
    assert!(matches!(err, ClusterError::Timeout { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("exactly 1 ready pod"), "{message}");
    assert!(message.contains("last seen: 1 pods, 0 ready"), "{message}");
}

#[tokio::test]
async fn forbidden_delete_stops_the_reset() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::DELETE, HPA)
            .respond_status(403, "Forbidden", "cannot delete horizontalpodautoscalers");
        no_more_requests(&mut handle).await;
    });
    let base = prepared(&HpaOverrides::default());
    let err = reset(
        &client,
        &base.target,
        &base.hpa,
        &HpaOverrides::default(),
        CPU_REQUEST,
        timings(),
    )
    .await
    .expect_err("forbidden");
    drop(client);
    verifier.done().await;
    assert!(
        err.to_string()
            .starts_with("delete HPA scaleproof/iris-classifier-hpa: API server answered 403"),
        "{err}"
    );
}
