//! The controller-manager's HPA sync period, read back from its static pod.

use http::Method;
use scaleproof::cluster::control_plane::verify_hpa_sync_period;
use serde_json::json;

use super::mock::{self, fixture, list, next, with};

const PODS: &str = "/api/v1/namespaces/kube-system/pods";

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
                .query_has("labelSelector=component%3Dkube-controller-manager")
                .respond_ok(&list("PodList", "v1", vec![pod]));
        });
        let outcome = verify_hpa_sync_period(&client, "5s").await;
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
