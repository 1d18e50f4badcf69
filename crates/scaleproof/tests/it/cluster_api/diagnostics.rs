//! The diagnostics bundle: every part best-effort, failures listed in the index.

use http::Method;
use scaleproof::cluster::diagnostics::write_bundle;
use serde_json::json;

use super::mock::{self, fixture, list, next, no_more_requests, with};
use super::{SELECTOR_QUERY, target};

#[tokio::test]
async fn writes_each_part_and_records_the_ones_that_failed() {
    let metrics_server_pod = with(
        with(
            with(
                fixture("pod-ready.json"),
                "/metadata/name",
                json!("metrics-server-5f9f776df5-k4x8z"),
            ),
            "/metadata/namespace",
            json!("kube-system"),
        ),
        "/spec/containers/0/name",
        json!("metrics-server"),
    );
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, move |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::GET, "/apis/autoscaling/v2/namespaces/scaleproof/horizontalpodautoscalers/iris-classifier-hpa")
            .respond_ok(&fixture("hpa.json"));
        next(&mut handle)
            .await
            .expect(
                Method::GET,
                "/apis/apps/v1/namespaces/scaleproof/deployments/iris-classifier",
            )
            .respond_status(
                403,
                "Forbidden",
                "deployments.apps \"iris-classifier\" is forbidden",
            );
        next(&mut handle)
            .await
            .expect(Method::GET, "/api/v1/namespaces/scaleproof/pods")
            .query_has(SELECTOR_QUERY)
            .respond_ok(&list("PodList", "v1", vec![fixture("pod-ready.json")]));
        next(&mut handle)
            .await
            .expect(
                Method::GET,
                "/api/v1/namespaces/scaleproof/pods/iris-classifier-7c9d8b6f5d-x2x7q/log",
            )
            .query_has("container=iris-server")
            .query_has("tailLines=5000")
            .respond_text("{\"level\":\"INFO\",\"msg\":\"listening on 0.0.0.0:8000\"}\n");
        next(&mut handle)
            .await
            .expect(Method::GET, "/api/v1/namespaces/scaleproof/events")
            .respond_ok(&fixture("events.json"));
        next(&mut handle)
            .await
            .expect(Method::GET, "/api/v1/namespaces/kube-system/pods")
            .query_has("labelSelector=k8s-app%3Dmetrics-server")
            .respond_ok(&list("PodList", "v1", vec![metrics_server_pod]));
        next(&mut handle)
            .await
            .expect(Method::GET, "/api/v1/namespaces/kube-system/pods/metrics-server-5f9f776df5-k4x8z/log")
            .query_has("container=metrics-server")
            .respond_text("E1128 10:00:20 scraper.go:149] \"Failed to scrape node\" err=\"x509: cannot validate certificate\"\n");
        next(&mut handle)
            .await
            .expect(
                Method::GET,
                "/apis/metrics.k8s.io/v1beta1/namespaces/scaleproof/pods",
            )
            .respond_status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        no_more_requests(&mut handle).await;
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let report = write_bundle(&client, &target(), dir.path())
        .await
        .expect("bundle");
    drop(client);
    verifier.done().await;

    let read = |name: &str| {
        std::fs::read_to_string(dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let hpa = read("hpa.yaml");
    assert!(hpa.contains("reason: ValidMetricFound"), "{hpa}");
    assert!(!hpa.contains("managedFields"), "managedFields are stripped");
    assert!(read("pods.yaml").contains("phase: Running"));
    assert!(
        read("events.txt").contains(
            "Warning Failed pod/iris-classifier-7c9d8b6f5d-x2x7q: Error: ErrImagePull (x3)"
        )
    );
    assert!(read("logs/iris-classifier-7c9d8b6f5d-x2x7q.iris-server.log").contains("listening"));
    assert!(
        read("logs/kube-system.metrics-server-5f9f776df5-k4x8z.metrics-server.log")
            .contains("x509")
    );
    assert!(!dir.path().join("deployment.yaml").exists());

    let index = read("index.txt");
    assert!(index.contains("ok      hpa.yaml"), "{index}");
    assert!(
        index.contains("FAILED  deployment.yaml: API server answered 403 Forbidden"),
        "{index}"
    );
    assert!(
        index.contains("FAILED  pod-metrics.yaml: API server answered 404 NotFound"),
        "{index}"
    );
    let failed: Vec<&str> = report.failures().map(|(name, _)| name).collect();
    assert_eq!(failed, ["deployment.yaml", "pod-metrics.yaml"]);
}
