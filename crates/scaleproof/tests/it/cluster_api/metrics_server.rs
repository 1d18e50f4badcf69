//! metrics-server: the kind flags patched in, and the wait for PodMetrics.

use std::time::Duration;

use http::Method;
use scaleproof::cluster::ClusterError;
use scaleproof::cluster::metrics_server::{MetricsWait, configure_for_kind, wait_for_pod_metrics};
use serde_json::json;

use super::mock::{self, fixture, list, next, no_more_requests, with};
use super::{NS, SELECTOR_QUERY};

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/kube-system/deployments/metrics-server";
const API_SERVICE: &str = "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io";
const POD_METRICS: &str = "/apis/metrics.k8s.io/v1beta1/namespaces/scaleproof/pods";
const SELECTOR: &str = "app.kubernetes.io/name=iris-classifier";

fn fast(timeout_ms: u64) -> MetricsWait {
    MetricsWait {
        timeout: Duration::from_millis(timeout_ms),
        poll: Duration::from_millis(10),
    }
}

#[tokio::test]
async fn json_patch_replaces_the_resolution_and_adds_insecure_tls() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::GET, DEPLOYMENT)
            .respond_ok(&fixture("metrics-server-deployment.json"));
        let patch = next(&mut handle)
            .await
            .expect(Method::PATCH, DEPLOYMENT)
            .content_type_is("application/json-patch+json");
        let path = "/spec/template/spec/containers/0/args";
        assert_eq!(
            patch.body,
            json!([
                {"op": "test", "path": path, "value": [
                    "--cert-dir=/tmp", "--secure-port=10250",
                    "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
                    "--kubelet-use-node-status-port", "--metric-resolution=15s"]},
                {"op": "replace", "path": path, "value": [
                    "--cert-dir=/tmp", "--secure-port=10250",
                    "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
                    "--kubelet-use-node-status-port", "--kubelet-insecure-tls", "--metric-resolution=15s"]}
            ])
        );
        patch.respond_ok(&fixture("metrics-server-deployment.json"));
    });
    assert!(configure_for_kind(&client).await.expect("patched"));
    verifier.done().await;
}

#[tokio::test]
async fn already_configured_metrics_server_is_left_alone() {
    let configured = with(
        fixture("metrics-server-deployment.json"),
        "/spec/template/spec/containers/0/args",
        json!([
            "--cert-dir=/tmp",
            "--kubelet-insecure-tls",
            "--metric-resolution=15s"
        ]),
    );
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, move |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::GET, DEPLOYMENT)
            .respond_ok(&configured);
        no_more_requests(&mut handle).await;
    });
    assert!(!configure_for_kind(&client).await.expect("read"));
    drop(client);
    verifier.done().await;
}

#[tokio::test]
async fn missing_metrics_server_is_a_404_error_with_the_deployment_named() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::GET, DEPLOYMENT)
            .respond_status(
                404,
                "NotFound",
                "deployments.apps \"metrics-server\" not found",
            );
    });
    let err = configure_for_kind(&client).await.expect_err("absent");
    verifier.done().await;
    assert!(
        err.to_string().starts_with(
            "configure Deployment kube-system/metrics-server: API server answered 404 NotFound"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn waits_through_absent_unavailable_and_empty_metrics_until_pod_metrics_are_served() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        // Not registered yet (components.yaml still being applied).
        next(&mut handle)
            .await
            .expect(Method::GET, API_SERVICE)
            .respond_status(
                404,
                "NotFound",
                "apiservices.apiregistration.k8s.io \"v1beta1.metrics.k8s.io\" not found",
            );
        next(&mut handle)
            .await
            .expect(Method::GET, API_SERVICE)
            .respond_ok(&fixture("apiservice-unavailable.json"));
        next(&mut handle)
            .await
            .expect(Method::GET, API_SERVICE)
            .respond_ok(&fixture("apiservice-available.json"));
        next(&mut handle)
            .await
            .expect(Method::GET, POD_METRICS)
            .query_has(SELECTOR_QUERY)
            .respond_status(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            );
        next(&mut handle)
            .await
            .expect(Method::GET, API_SERVICE)
            .respond_ok(&fixture("apiservice-available.json"));
        next(&mut handle)
            .await
            .expect(Method::GET, POD_METRICS)
            .respond_ok(&list("PodMetricsList", "metrics.k8s.io/v1beta1", vec![]));
        next(&mut handle)
            .await
            .expect(Method::GET, API_SERVICE)
            .respond_ok(&fixture("apiservice-available.json"));
        next(&mut handle)
            .await
            .expect(Method::GET, POD_METRICS)
            .respond_ok(&list(
                "PodMetricsList",
                "metrics.k8s.io/v1beta1",
                vec![fixture("pod-metrics.json")],
            ));
        no_more_requests(&mut handle).await;
    });
    wait_for_pod_metrics(&client, NS, SELECTOR, fast(5000))
        .await
        .expect("metrics served");
    drop(client);
    verifier.done().await;
}

#[tokio::test]
async fn an_apiservice_that_stays_unavailable_times_out_with_its_reason() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        while let Some(exchange) =
            tokio::time::timeout(Duration::from_secs(2), mock::try_next(&mut handle))
                .await
                .expect("requests stop when the wait gives up")
        {
            exchange
                .expect(Method::GET, API_SERVICE)
                .respond_ok(&fixture("apiservice-unavailable.json"));
        }
    });
    let err = wait_for_pod_metrics(&client, NS, SELECTOR, fast(100))
        .await
        .expect_err("never available");
    drop(client);
    verifier.done().await;
    assert!(matches!(err, ClusterError::Timeout { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("not Available: MissingEndpoints"),
        "{message}"
    );
    assert!(
        message.contains("kubectl -n kube-system logs deploy/metrics-server"),
        "{message}"
    );
}

#[tokio::test]
async fn forbidden_metrics_api_fails_at_once() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::GET, API_SERVICE)
            .respond_ok(&fixture("apiservice-available.json"));
        next(&mut handle)
            .await
            .expect(Method::GET, POD_METRICS)
            .respond_status(403, "Forbidden", "pods.metrics.k8s.io is forbidden");
        no_more_requests(&mut handle).await;
    });
    let err = wait_for_pod_metrics(&client, NS, SELECTOR, fast(5000))
        .await
        .expect_err("forbidden");
    drop(client);
    verifier.done().await;
    assert!(err.to_string().contains("403 Forbidden"), "{err}");
}
