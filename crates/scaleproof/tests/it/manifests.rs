//! The repository's k8s/ manifests: typed, strict, and carrying the numbers the
//! mission promises (1..3 pods, 50 % CPU target, 100m request, 200m limit).

use std::path::{Path, PathBuf};

use scaleproof::manifests::{ManifestError, Manifests};

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s")
}

#[test]
fn repository_manifests_parse_strictly_and_carry_the_promised_numbers() {
    let m = Manifests::load(&k8s_dir()).expect("k8s/ parses");
    let w = m.workload().expect("workload facts");
    assert_eq!(w.deployment_name, "iris-classifier");
    assert_eq!(w.cpu_request_millicores, 100);
    assert_eq!(w.cpu_limit_millicores, 200);
    assert_eq!(w.port, 8000);
    assert_eq!(w.readiness_path, "/ready");
    assert!(w.env.contains_key("IRIS_CPU_COST_MS"));

    let spec = m.deployment.spec.as_ref().expect("deployment spec");
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.as_ref().expect("pod spec");
    let resources = w.container.resources.as_ref().expect("resources");
    let memory = |side: &Option<std::collections::BTreeMap<String, _>>| {
        side.as_ref()
            .and_then(
                |m: &std::collections::BTreeMap<
                    String,
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity,
                >| m.get("memory"),
            )
            .map(|q| q.0.clone())
    };
    assert_eq!(memory(&resources.requests).as_deref(), Some("128Mi"));
    assert_eq!(memory(&resources.limits).as_deref(), Some("256Mi"));
    let liveness = w.container.liveness_probe.as_ref().expect("liveness probe");
    assert_eq!(
        liveness.http_get.as_ref().and_then(|h| h.path.as_deref()),
        Some("/health")
    );

    // Pod Security "restricted": every rule of the profile, at pod or container level.
    let pod_sc = pod.security_context.as_ref().expect("pod securityContext");
    let sc = w
        .container
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert!(sc.run_as_non_root == Some(true) || pod_sc.run_as_non_root == Some(true));
    let caps = sc
        .capabilities
        .as_ref()
        .and_then(|c| c.drop.clone())
        .unwrap_or_default();
    assert_eq!(caps, vec!["ALL".to_string()]);
    let seccomp = sc
        .seccomp_profile
        .as_ref()
        .or(pod_sc.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str());
    assert_eq!(seccomp, Some("RuntimeDefault"));
    // The drain must finish before the kubelet's SIGKILL.
    let drain_s: i64 = w.env["IRIS_DRAIN_TIMEOUT_S"]
        .parse()
        .expect("drain timeout is a number");
    assert!(pod.termination_grace_period_seconds.expect("grace period") > drain_s);

    let svc = m.service.spec.as_ref().expect("service spec");
    assert_eq!(svc.type_.as_deref(), Some("NodePort"));
    let port = &svc.ports.as_ref().expect("service ports")[0];
    assert_eq!(port.node_port, Some(30080));

    let hpa = m.hpa.spec.as_ref().expect("hpa spec");
    assert_eq!(m.hpa.metadata.name.as_deref(), Some("iris-classifier-hpa"));
    assert_eq!(hpa.scale_target_ref.name, "iris-classifier");
    assert_eq!(hpa.min_replicas, Some(1));
    assert_eq!(hpa.max_replicas, 3);
    let metric = &hpa.metrics.as_ref().expect("metrics")[0];
    let resource = metric.resource.as_ref().expect("resource metric");
    assert_eq!(resource.name, "cpu");
    assert_eq!(resource.target.average_utilization, Some(50));
    let behavior = hpa.behavior.as_ref().expect("behavior");
    let up = behavior.scale_up.as_ref().expect("scaleUp");
    assert_eq!(up.stabilization_window_seconds, Some(0));
    assert_eq!(up.select_policy.as_deref(), Some("Max"));
    let up_policies: Vec<_> = up
        .policies
        .iter()
        .flatten()
        .map(|p| (p.type_.as_str(), p.value, p.period_seconds))
        .collect();
    assert_eq!(up_policies, vec![("Percent", 100, 15), ("Pods", 2, 15)]);
    let down = behavior.scale_down.as_ref().expect("scaleDown");
    assert_eq!(down.stabilization_window_seconds, Some(60));
    let down_policies: Vec<_> = down
        .policies
        .iter()
        .flatten()
        .map(|p| (p.type_.as_str(), p.value, p.period_seconds))
        .collect();
    assert_eq!(down_policies, vec![("Percent", 50, 15)]);
}

/// Copies k8s/ into a temporary directory with one edit applied.
fn edited_copy(file: &str, from: &str, to: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(k8s_dir()).expect("k8s/ readable") {
        let path = entry.expect("dir entry").path();
        let mut text = std::fs::read_to_string(&path).expect("manifest readable");
        if path.file_name().and_then(|n| n.to_str()) == Some(file) {
            assert!(text.contains(from), "{file} should contain {from:?}");
            text = text.replacen(from, to, 1);
        }
        std::fs::write(tmp.path().join(path.file_name().expect("file name")), text)
            .expect("write copy");
    }
    tmp
}

#[test]
fn a_misspelled_key_is_rejected_with_its_path() {
    let tmp = edited_copy("deployment.yaml", "imagePullPolicy:", "imagePullPolcy:");
    let err = Manifests::load(tmp.path()).expect_err("misspelling must fail");
    match &err {
        ManifestError::UnknownField { field, kind, .. } => {
            assert_eq!(kind, "Deployment");
            assert_eq!(field, "spec.template.spec.containers[0].imagePullPolcy");
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(err.to_string().contains("deployment.yaml"), "{err}");
}

#[test]
fn a_wrong_type_is_rejected_naming_the_object() {
    let tmp = edited_copy("hpa.yaml", "maxReplicas: 3", "maxReplicas: three");
    let err = Manifests::load(tmp.path()).expect_err("wrong type must fail");
    let text = err.to_string();
    assert!(
        text.contains("hpa.yaml") && text.contains("iris-classifier-hpa"),
        "{text}"
    );
}

// kubernetes pkg/apis/core/v1/defaults.go, SetDefaults_Pod: a container with a limit
// and no request gets the limit as its request, and the HPA scales on it. A manifest
// the API server accepts is not refused here.
#[test]
fn a_limit_without_a_request_is_defaulted_as_the_api_server_does() {
    let tmp = edited_copy("deployment.yaml", "              cpu: 100m\n", "");
    let workload = Manifests::load(tmp.path())
        .expect("the API server accepts a limit without a request")
        .workload()
        .expect("the workload");
    assert_eq!(workload.cpu_request_millicores, 200);
    assert_eq!(workload.cpu_limit_millicores, 200);
}

#[test]
fn no_cpu_limit_or_request_at_all_is_explained() {
    let tmp = edited_copy("deployment.yaml", "              cpu: 100m\n", "");
    let text = std::fs::read_to_string(tmp.path().join("deployment.yaml")).unwrap();
    std::fs::write(
        tmp.path().join("deployment.yaml"),
        text.replace("              cpu: 200m\n", ""),
    )
    .unwrap();
    let err = Manifests::load(tmp.path()).expect_err("no cpu at all must fail");
    assert!(err.to_string().contains("no cpu request or limit"), "{err}");
}

// kube-proxy refuses connections to a Service without endpoints: the gate's load would
// reach nothing. The API server accepts it; the gate names it before anything runs.
#[test]
fn a_service_that_selects_no_pod_is_named() {
    let tmp = edited_copy(
        "service.yaml",
        "  selector:\n    app.kubernetes.io/name: iris-classifier",
        "  selector:\n    app.kubernetes.io/name: nobody",
    );
    let err = Manifests::load(tmp.path()).expect_err("no endpoints");
    let text = err.to_string();
    assert!(
        text.contains("selects no pod of Deployment iris-classifier")
            && text.contains("app.kubernetes.io/name=nobody"),
        "{text}"
    );
}
