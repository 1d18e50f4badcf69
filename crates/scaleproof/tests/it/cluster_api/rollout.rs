//! Rollout wait: success through the watch, and a readable diagnosis on failure.

use std::time::Duration;

use http::Method;
use scaleproof::cluster::ClusterError;
use scaleproof::cluster::rollout::wait_for_rollout;
use serde_json::json;

use super::mock::{self, event, fixture, list, next, with};
use super::{NS, SELECTOR_QUERY};

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/scaleproof/deployments";
const NAME_FIELD: &str = "fieldSelector=metadata.name%3Diris-classifier";
const SELECTOR: &str = "app.kubernetes.io/name=iris-classifier";

#[tokio::test]
async fn returns_once_the_watch_shows_the_rollout_complete() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::GET, DEPLOYMENTS)
            .query_has(NAME_FIELD)
            .respond_ok(&list(
                "DeploymentList",
                "apps/v1",
                vec![fixture("deployment-progressing.json")],
            ));
        next(&mut handle)
            .await
            .expect(Method::GET, DEPLOYMENTS)
            .query_has("watch=true")
            .query_has(NAME_FIELD)
            .respond_watch(&[event("MODIFIED", &fixture("deployment-ready.json"))]);
    });
    let deployment = wait_for_rollout(
        &client,
        NS,
        "iris-classifier",
        SELECTOR,
        Duration::from_secs(5),
    )
    .await
    .expect("rollout completes");
    assert_eq!(deployment.status.and_then(|s| s.ready_replicas), Some(1));
    verifier.done().await;
}

#[tokio::test]
async fn timeout_explains_image_pull_backoff_with_pods_and_events() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::GET, DEPLOYMENTS)
            .respond_ok(&list(
                "DeploymentList",
                "apps/v1",
                vec![fixture("deployment-progressing.json")],
            ));
        // The watch stays open and silent: the pod never becomes ready.
        let _silent_watch = next(&mut handle)
            .await
            .expect(Method::GET, DEPLOYMENTS)
            .query_has("watch=true");
        next(&mut handle)
            .await
            .expect(Method::GET, "/api/v1/namespaces/scaleproof/pods")
            .query_has(SELECTOR_QUERY)
            .respond_ok(&list(
                "PodList",
                "v1",
                vec![fixture("pod-image-pull-backoff.json")],
            ));
        next(&mut handle)
            .await
            .expect(Method::GET, "/api/v1/namespaces/scaleproof/events")
            .respond_ok(&fixture("events.json"));
    });

    let err = wait_for_rollout(
        &client,
        NS,
        "iris-classifier",
        SELECTOR,
        Duration::from_millis(300),
    )
    .await
    .expect_err("never ready");
    verifier.done().await;
    let ClusterError::Rollout(failure) = &err else {
        panic!("expected a rollout failure, got {err:?}");
    };
    let d = &failure.diagnosis;
    assert!(
        d.status.starts_with("0/1 ready, 1 updated, 0 available"),
        "{}",
        d.status
    );
    let cause = d.likely_cause.as_deref().expect("a likely cause");
    assert!(cause.starts_with("ImagePullBackOff"), "{cause}");
    assert!(
        cause.contains("kind load docker-image iris-server:abc1234"),
        "{cause}"
    );
    assert_eq!(d.pods.len(), 1);
    assert_eq!(d.pods[0].phase, "Pending");
    assert!(
        d.pods[0].containers[0].contains("waiting: ImagePullBackOff"),
        "{:?}",
        d.pods[0]
    );
    // Oldest first, sorted by time whatever the API's order.
    let reasons: Vec<&str> = d
        .events
        .iter()
        .map(|e| e.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(reasons, ["Scheduled", "Pulling", "Failed", "BackOff"]);
    assert!(d.events[2].starts_with(
        "Warning Failed pod/iris-classifier-7c9d8b6f5d-x2x7q: Error: ErrImagePull (x3)"
    ));

    let message = err.to_string();
    assert!(
        message.starts_with("Deployment scaleproof/iris-classifier did not become ready"),
        "{message}"
    );
    assert!(
        message.contains("likely cause: ImagePullBackOff"),
        "{message}"
    );
    assert!(message.contains("recent events:"), "{message}");
}

#[tokio::test]
async fn progress_deadline_exceeded_fails_without_waiting_for_the_timeout() {
    let stuck = with(
        fixture("deployment-progressing.json"),
        "/status/conditions/1",
        json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
               "message": "ReplicaSet \"iris-classifier-7c9d8b6f5d\" has timed out progressing."}),
    );
    let crashing = with(
        fixture("pod-image-pull-backoff.json"),
        "/status/containerStatuses/0",
        json!({"name": "iris-server", "image": "iris-server:abc1234", "imageID": "", "ready": false,
               "restartCount": 5, "started": false,
               "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s restarting failed container=iris-server"}},
               "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "startedAt": "2026-11-28T10:04:00Z", "finishedAt": "2026-11-28T10:04:01Z"}}}),
    );
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, move |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::GET, DEPLOYMENTS)
            .respond_ok(&list("DeploymentList", "apps/v1", vec![stuck]));
        // Kubernetes gave up already: no watch is started, no timeout waited for.
        next(&mut handle)
            .await
            .expect(Method::GET, "/api/v1/namespaces/scaleproof/pods")
            .respond_ok(&list("PodList", "v1", vec![crashing]));
        // The crashed container's last words (its previous log, as the kubelet
        // serves it: text/plain).
        next(&mut handle)
            .await
            .expect(
                Method::GET,
                "/api/v1/namespaces/scaleproof/pods/iris-classifier-7c9d8b6f5d-x2x7q/log",
            )
            .query_has("previous=true")
            .query_has("container=iris-server")
            .respond_text(
                "error: invalid value '-1' for '--cpu-cost-ms <CPU_COST_MS>': -1 is out of range\n\n\
                 For more information, try '--help'.\n",
            );
        next(&mut handle)
            .await
            .expect(Method::GET, "/api/v1/namespaces/scaleproof/events")
            .respond_status(403, "Forbidden", "events is forbidden");
    });
    let started = std::time::Instant::now();
    let err = wait_for_rollout(
        &client,
        NS,
        "iris-classifier",
        SELECTOR,
        Duration::from_secs(8),
    )
    .await
    .expect_err("deadline exceeded");
    verifier.done().await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "must not wait for the timeout"
    );
    let ClusterError::Rollout(failure) = err else {
        panic!("expected a rollout failure");
    };
    let d = failure.diagnosis;
    assert!(
        d.status
            .contains("Progressing=False ProgressDeadlineExceeded"),
        "{}",
        d.status
    );
    let cause = d.likely_cause.expect("cause");
    assert!(
        cause.contains("CrashLoopBackOff") && cause.contains("last exit code 2"),
        "{cause}"
    );
    assert!(
        d.pods[0].containers[0].contains("restarts=5; last exit: Error (exit code 2)"),
        "{:?}",
        d.pods
    );
    assert_eq!(
        d.pods[0].containers[1],
        "container iris-server, last words: error: invalid value '-1' for '--cpu-cost-ms \
         <CPU_COST_MS>': -1 is out of range"
    );
    assert_eq!(d.gaps.len(), 1, "events were forbidden: {:?}", d.gaps);
    assert!(d.gaps[0].contains("403 Forbidden"));
}

#[tokio::test]
async fn a_failing_watch_is_an_error_naming_the_deployment() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::GET, DEPLOYMENTS)
            .respond_status(
                403,
                "Forbidden",
                "deployments.apps is forbidden: User \"ci\" cannot list resource \"deployments\"",
            );
    });
    let err = wait_for_rollout(
        &client,
        NS,
        "iris-classifier",
        SELECTOR,
        Duration::from_secs(5),
    )
    .await
    .expect_err("forbidden");
    verifier.done().await;
    assert!(matches!(err, ClusterError::Watch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with("watch Deployment scaleproof/iris-classifier: listing failed: API server answered 403 Forbidden"), "{message}");
}

/// A list or watch that fails (an API server restarting, an expired watch) is retried
/// with backoff until the rollout's deadline, not taken for a failed rollout.
#[tokio::test]
async fn a_failing_watch_is_retried_until_the_rollout_completes() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::GET, DEPLOYMENTS)
            .respond_status(500, "InternalError", "etcdserver: leader changed");
        next(&mut handle)
            .await
            .expect(Method::GET, DEPLOYMENTS)
            .query_has(NAME_FIELD)
            .respond_ok(&list(
                "DeploymentList",
                "apps/v1",
                vec![fixture("deployment-progressing.json")],
            ));
        next(&mut handle)
            .await
            .expect(Method::GET, DEPLOYMENTS)
            .query_has("watch=true")
            .respond_watch(&[event("MODIFIED", &fixture("deployment-ready.json"))]);
    });
    let deployment = wait_for_rollout(
        &client,
        NS,
        "iris-classifier",
        SELECTOR,
        Duration::from_secs(8),
    )
    .await
    .expect("the rollout completes after the retry");
    assert_eq!(deployment.status.and_then(|s| s.ready_replicas), Some(1));
    verifier.done().await;
}
