//! Reset between scenarios: forget the HPA, back to one ready pod, fresh HPA.

use std::time::Duration;

use http::Method;
use scaleproof::cluster::reset::{ResetTimings, reset};
use scaleproof::cluster::{ClusterError, HpaOverrides};
use serde_json::json;

use super::mock::{self, fixture, list, next, no_more_requests, with};
use super::{NS, SELECTOR_QUERY, prepared};

const HPA: &str =
    "/apis/autoscaling/v2/namespaces/scaleproof/horizontalpodautoscalers/iris-classifier-hpa";
const PODS: &str = "/api/v1/namespaces/scaleproof/pods";

fn timings() -> ResetTimings {
    ResetTimings {
        settle_timeout: Duration::from_secs(5),
        poll: Duration::from_millis(10),
    }
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
    reset(&client, &base.target, &base.hpa, &overrides, timings())
        .await
        .expect("reset succeeds");
    drop(client);
    verifier.done().await;
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
        poll: Duration::from_millis(10),
    };
    let err = reset(
        &client,
        &base.target,
        &base.hpa,
        &HpaOverrides::default(),
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
