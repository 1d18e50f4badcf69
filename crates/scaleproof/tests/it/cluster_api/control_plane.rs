//! The controller-manager's HPA sync period, read back from its static pod.

use std::time::Duration;

use http::Method;
use scaleproof::cluster::ClusterError;
use scaleproof::cluster::control_plane::{MirrorPodWait, verify_hpa_sync_period};
use serde_json::json;

use super::mock::{self, fixture, list, next, with};

const PODS: &str = "/api/v1/namespaces/kube-system/pods";
/// kubeadm's labels of the static pod, as the selector is sent.
const SELECTOR: &str = "labelSelector=component%3Dkube-controller-manager%2Ctier%3Dcontrol-plane";

fn quick(timeout_ms: u64) -> MirrorPodWait {
    MirrorPodWait {
        timeout: Duration::from_millis(timeout_ms),
        poll: Duration::from_millis(10),
    }
}

#[tokio::test]
async fn accepts_the_flag_kind_yaml_sets_and_names_a_missing_one() {
    for (command, expect_ok) in [
        (None, true),
        (
            Some(json!(["kube-controller-manager", "--leader-elect=true"])),
            false,
        ),
    ] {
        let pod = match command {
            None => fixture("controller-manager-pod.json"),
            Some(c) => with(
                fixture("controller-manager-pod.json"),
                "/spec/containers/0/command",
                c,
            ),
        };
        let (client, handle) = mock::client();
        let verifier = mock::verifier(handle, move |mut handle| async move {
            next(&mut handle)
                .await
                .expect(Method::GET, PODS)
                .query_has(SELECTOR)
                .respond_ok(&list("PodList", "v1", vec![pod]));
        });
        let outcome = verify_hpa_sync_period(&client, "5s", quick(1000)).await;
        verifier.done().await;
        match outcome {
            Ok(()) => assert!(expect_ok),
            Err(e) => {
                assert!(!expect_ok, "{e}");
                let message = e.to_string();
                assert!(
                    message.contains("<unset, default 15s> instead of 5s"),
                    "{message}"
                );
                assert!(
                    message.contains("kubeadmConfigPatches of k8s/kind.yaml"),
                    "{message}"
                );
            }
        }
    }
}

/// `kind create cluster --wait` returns once the Node is Ready; the kubelet creates the
/// controller-manager's mirror pod only after it sees its own Node, on a later sync.
/// So a first look may find nothing (or a briefly unavailable API): keep looking.
#[tokio::test]
async fn the_mirror_pod_may_appear_after_the_cluster_is_up() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        next(&mut handle)
            .await
            .expect(Method::GET, PODS)
            .respond_ok(&list("PodList", "v1", vec![]));
        next(&mut handle)
            .await
            .expect(Method::GET, PODS)
            .respond_status(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            );
        next(&mut handle)
            .await
            .expect(Method::GET, PODS)
            .respond_ok(&list(
                "PodList",
                "v1",
                vec![fixture("controller-manager-pod.json")],
            ));
    });
    verify_hpa_sync_period(&client, "5s", quick(2000))
        .await
        .expect("found on the third look");
    verifier.done().await;
}

#[tokio::test]
async fn a_mirror_pod_that_never_appears_times_out_saying_what_it_saw() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        while let Some(exchange) = mock::try_next(&mut handle).await {
            exchange
                .expect(Method::GET, PODS)
                .respond_ok(&list("PodList", "v1", vec![]));
        }
    });
    let err = verify_hpa_sync_period(&client, "5s", quick(100))
        .await
        .expect_err("never appears");
    drop(client);
    verifier.done().await;
    assert!(matches!(err, ClusterError::Timeout { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("wait for the kube-controller-manager pod"),
        "{message}"
    );
    assert!(
        message.contains(
            "last seen: no pod labeled component=kube-controller-manager,tier=control-plane"
        ),
        "{message}"
    );
}
