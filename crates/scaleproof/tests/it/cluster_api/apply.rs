//! Namespace and workload: server-side apply with our field manager, forced.

use http::Method;
use scaleproof::cluster::{ClusterError, HpaOverrides, apply};
use serde_json::json;

use super::mock::{self, fixture, next, no_more_requests};
use super::{IMAGE, NS, prepared};

const APPLY: &str = "application/apply-patch+yaml";

#[tokio::test]
async fn applies_namespace_deployment_service_and_hpa_in_order() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        let ns = next(&mut handle)
            .await
            .expect(Method::PATCH, &format!("/api/v1/namespaces/{NS}"))
            .content_type_is(APPLY)
            .query_has("fieldManager=scaleproof")
            .query_has("force=true");
        let labels = &ns.body["metadata"]["labels"];
        for mode in ["enforce", "warn", "audit"] {
            assert_eq!(
                labels[format!("pod-security.kubernetes.io/{mode}")],
                "restricted"
            );
        }
        let body = ns.body.clone();
        ns.respond_ok(&body);

        let deployment = next(&mut handle)
            .await
            .expect(
                Method::PATCH,
                &format!("/apis/apps/v1/namespaces/{NS}/deployments/iris-classifier"),
            )
            .content_type_is(APPLY)
            .query_has("fieldManager=scaleproof")
            .query_has("force=true");
        assert_eq!(deployment.body["kind"], "Deployment");
        assert_eq!(deployment.body["metadata"]["namespace"], NS);
        assert_eq!(
            deployment.body["spec"]["template"]["spec"]["containers"][0]["image"],
            IMAGE
        );
        assert!(
            deployment.body["spec"].get("replicas").is_none(),
            "the HPA owns replicas: {}",
            deployment.body["spec"]
        );
        deployment.respond_ok(&fixture("deployment-progressing.json"));

        let service = next(&mut handle)
            .await
            .expect(
                Method::PATCH,
                &format!("/api/v1/namespaces/{NS}/services/iris-classifier-service"),
            )
            .query_has("fieldManager=scaleproof")
            .query_has("force=true");
        assert_eq!(service.body["spec"]["ports"][0]["nodePort"], 30080);
        let body = service.body.clone();
        service.respond_ok(&body);

        let hpa = next(&mut handle)
            .await
            .expect(
                Method::PATCH,
                &format!(
                    "/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/iris-classifier-hpa"
                ),
            )
            .content_type_is(APPLY)
            .query_has("fieldManager=scaleproof")
            .query_has("force=true");
        assert_eq!(hpa.body["spec"]["maxReplicas"], 3);
        assert_eq!(hpa.body["spec"]["minReplicas"], 1);
        hpa.respond_ok(&fixture("hpa.json"));
        no_more_requests(&mut handle).await;
    });

    apply::apply_workload(&client, &prepared(&HpaOverrides::default()))
        .await
        .expect("apply succeeds");
    drop(client);
    verifier.done().await;
}

#[tokio::test]
async fn forbidden_apply_stops_with_a_message_naming_the_object_and_the_fix() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        let ns = next(&mut handle)
            .await
            .expect(Method::PATCH, &format!("/api/v1/namespaces/{NS}"));
        let body = ns.body.clone();
        ns.respond_ok(&body);
        next(&mut handle)
            .await
            .expect(
                Method::PATCH,
                &format!("/apis/apps/v1/namespaces/{NS}/deployments/iris-classifier"),
            )
            .respond_status(
                403,
                "Forbidden",
                "deployments.apps \"iris-classifier\" is forbidden: User \"ci\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"scaleproof\"",
            );
        no_more_requests(&mut handle).await;
    });

    let err = apply::apply_workload(&client, &prepared(&HpaOverrides::default()))
        .await
        .expect_err("403 must fail the apply");
    drop(client);
    verifier.done().await;
    assert!(matches!(err, ClusterError::Kube { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("apply Deployment iris-classifier: API server answered 403 Forbidden"),
        "{message}"
    );
    assert!(message.contains("cannot patch resource"), "{message}");
    assert!(message.contains("RBAC"), "{message}");
}

#[tokio::test]
async fn hpa_overrides_reach_the_applied_body() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        let hpa = next(&mut handle).await.expect(
            Method::PATCH,
            &format!(
                "/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/iris-classifier-hpa"
            ),
        );
        assert_eq!(hpa.body["spec"]["maxReplicas"], 1);
        assert_eq!(
            hpa.body["spec"]["metrics"][0]["resource"]["target"],
            json!({"type": "Utilization", "averageUtilization": 80})
        );
        hpa.respond_ok(&fixture("hpa.json"));
    });
    let overrides = HpaOverrides {
        max_replicas: Some(1),
        target_cpu_pct: Some(80),
        ..HpaOverrides::default()
    };
    let prepared = prepared(&overrides);
    apply::apply_hpa(&client, NS, &prepared.hpa)
        .await
        .expect("apply succeeds");
    verifier.done().await;
}
