//! A setup step failing after the cluster exists leaves evidence before teardown:
//! the diagnostics bundle of the Deployment it waited on (pods with their status,
//! logs of the current and the previous container, events, the APIService, the
//! controller-manager's flags), and a setup testcase in junit.xml that names the
//! likely cause and quotes the decisive log line.

use std::collections::BTreeMap;
use std::time::Duration;

use http::Method;
use scaleproof::backend::plan::{ExternalCommand, KubeStep, Plan, Step, TeardownWhen};
use scaleproof::backend::provision::execute_with;
use scaleproof::backend::{BackendKind, Settings, SetupLog};
use scaleproof::cluster::HpaOverrides;
use scaleproof::report::{Report, RunMeta, SCHEMA_VERSION, junit};
use serde_json::json;

use super::mock::{self, Exchange, fixture, list, try_next, with};
use super::prepared;

const MS_DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/kube-system/deployments";
const MS_DEPLOYMENT: &str = "/apis/apps/v1/namespaces/kube-system/deployments/metrics-server";
const SYSTEM_PODS: &str = "/api/v1/namespaces/kube-system/pods";
const CRASHING: &str = "metrics-server-6b4f7d9c8-qzv2t";
/// What metrics-server v0.9.0 prints when its flags fail its start-up validation
/// (`cmd/metrics-server/app/options/options.go`), through component-base's run.go.
const FATAL: &str = r#"E1128 10:00:02.514930       1 run.go:72] "command failed" err="metric-resolution should be larger than kubelet-request-timeout, but metric-resolution value 10s kubelet-request-timeout value 10s provided""#;

/// The API of a kind cluster whose metrics-server crash-loops: answers by path, in
/// whatever order the harness asks.
fn crash_looping_metrics_server(exchange: Exchange, held: &mut Vec<Exchange>) {
    let (method, path, query) = (
        exchange.method.clone(),
        exchange.path.clone(),
        exchange.query.clone(),
    );
    match (method, path.as_str()) {
        (Method::GET, MS_DEPLOYMENT) => exchange.respond_ok(&fixture("metrics-server-deployment.json")),
        (Method::PATCH, MS_DEPLOYMENT) => exchange.respond_ok(&fixture("metrics-server-deployment.json")),
        (Method::GET, MS_DEPLOYMENTS) if query.contains("watch=true") => held.push(exchange),
        (Method::GET, MS_DEPLOYMENTS) => {
            let unavailable = with(
                fixture("metrics-server-deployment.json"),
                "/metadata/generation",
                json!(2),
            );
            exchange.respond_ok(&list("DeploymentList", "apps/v1", vec![unavailable]));
        }
        (Method::GET, SYSTEM_PODS) if query.contains("component%3Dkube-controller-manager") => {
            exchange.respond_ok(&list("PodList", "v1", vec![fixture("controller-manager-pod.json")]))
        }
        (Method::GET, SYSTEM_PODS) => exchange
            .query_has("labelSelector=k8s-app%3Dmetrics-server")
            .respond_ok(&list("PodList", "v1", vec![fixture("metrics-server-pod-crashloop.json")])),
        (Method::GET, p) if p == format!("{SYSTEM_PODS}/{CRASHING}/log") => {
            if query.contains("previous=true") {
                exchange.respond_text(&format!(
                    "I1128 10:00:02.501122       1 serving.go:374] Generated self-signed cert (/tmp/apiserver.crt, /tmp/apiserver.key)\n{FATAL}\n"
                ));
            } else {
                // The container is waiting to be restarted: the kubelet says so.
                exchange.respond_status(
                    400,
                    "BadRequest",
                    &format!("container \"metrics-server\" in pod \"{CRASHING}\" is waiting to start: CrashLoopBackOff"),
                );
            }
        }
        (Method::GET, "/api/v1/namespaces/kube-system/events") => {
            exchange.respond_ok(&list("EventList", "v1", vec![json!({
                "metadata": {"name": format!("{CRASHING}.187c1a0b2a0e0010"), "namespace": "kube-system",
                             "creationTimestamp": "2026-11-28T09:58:45Z"},
                "involvedObject": {"kind": "Pod", "namespace": "kube-system", "name": CRASHING,
                                   "apiVersion": "v1", "fieldPath": "spec.containers{metrics-server}"},
                "reason": "BackOff", "message": "Back-off restarting failed container metrics-server in pod metrics-server-6b4f7d9c8-qzv2t_kube-system(5e8a1c2d-7b3f-4a61-9d0e-2f4c6b8a0d13)",
                "source": {"component": "kubelet", "host": "scaleproof-control-plane"},
                "firstTimestamp": "2026-11-28T09:58:45Z", "lastTimestamp": "2026-11-28T10:00:03Z",
                "count": 5, "type": "Warning", "eventTime": null,
                "reportingComponent": "kubelet", "reportingInstance": "scaleproof-control-plane"
            })]))
        }
        (Method::GET, "/api/v1/namespaces/scaleproof/events") => {
            exchange.respond_ok(&list("EventList", "v1", vec![]))
        }
        (Method::GET, "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io") => {
            exchange.respond_ok(&fixture("apiservice-unavailable.json"))
        }
        (method, other) => panic!("unexpected request {method} {other}?{query}"),
    }
}

#[tokio::test]
async fn a_crash_looping_metrics_server_leaves_a_bundle_and_a_setup_error_quoting_its_log() {
    let (client, handle) = mock::client();
    let verifier = mock::verifier(handle, |mut handle| async move {
        let mut held = Vec::new();
        while let Some(exchange) = try_next(&mut handle).await {
            crash_looping_metrics_server(exchange, &mut held);
        }
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        backend: BackendKind::Kind,
        cluster_name: "scaleproof".into(),
        context: Some("kind-scaleproof".into()),
        image: Some("iris-server:abc1234".into()),
        namespace: "scaleproof".into(),
        keep_cluster: true, // the stand-in for `kind create` below must not arm the guard
        image_prebuilt: false,
        image_build: Default::default(),
        build_tests: false,
        dry_run: false,
        wait_timeout: Duration::from_millis(300),
        diagnostics_dir: dir.path().join("diagnostics/setup"),
        root: dir.path().to_path_buf(),
        env_overrides: BTreeMap::new(),
        manifests_dir: dir.path().join("k8s"),
        hpa_sync_period: Duration::from_secs(5),
        timing: scaleproof_sim::Timing::preset(scaleproof_sim::TimingPreset::Kind),
        seed: 1,
        log_dir: dir.path().join("logs"),
        local_containers: BTreeMap::new(),
        faults: Vec::new(),
        disruptions: Vec::new(),
    };
    let plan = Plan {
        backend: BackendKind::Kind,
        context: settings.context.clone(),
        image: settings.image.clone(),
        prepared: prepared(&HpaOverrides::default()),
        setup: vec![
            // The cluster exists from here on (a stand-in for `kind create cluster`).
            Step::Run(ExternalCommand {
                program: "true".into(),
                args: Vec::new(),
                why: "the cluster exists",
                creates_cluster: true,
                fallback: Vec::new(),
            }),
            Step::Kube(KubeStep::ConfigureMetricsServer),
            Step::Kube(KubeStep::WaitRollout {
                namespace: "kube-system".into(),
                deployment: "metrics-server".into(),
                selector: "k8s-app=metrics-server".into(),
            }),
        ],
        teardown: Vec::new(),
        teardown_when: TeardownWhen::Always,
    };
    let mut log = SetupLog::default();
    let err = match execute_with(&plan, &settings, &mut log, Some(client)).await {
        Ok(_) => panic!("metrics-server never rolls out"),
        Err(e) => e,
    };
    verifier.done().await;
    assert!(
        err.to_string()
            .contains("setup step 3 of 3 (roll out metrics-server)"),
        "{err}"
    );

    // The bundle, written before the error came back (and so before any teardown).
    let bundle = dir.path().join("diagnostics/setup");
    let read = |name: &str| {
        std::fs::read_to_string(bundle.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let previous = read(&format!(
        "logs/kube-system.{CRASHING}.metrics-server.previous.log"
    ));
    assert!(
        previous.contains("metric-resolution should be larger"),
        "{previous}"
    );
    let pods = read("kube-system.metrics-server.pods.yaml");
    assert!(
        pods.contains("reason: CrashLoopBackOff") && pods.contains("exitCode: 1"),
        "{pods}"
    );
    assert!(read("events.kube-system.txt").contains("Warning BackOff pod/metrics-server"));
    assert!(read("apiservice.yaml").contains("MissingEndpoints"));
    assert!(
        read("controller-manager-flags.txt").contains("--horizontal-pod-autoscaler-sync-period=")
    );
    let index = read("index.txt");
    assert!(
        index.contains(&format!("FAILED  logs/kube-system.{CRASHING}.metrics-server.log: API server answered 400 BadRequest")),
        "the current container's log is asked for too: {index}"
    );

    // The setup testcase names the cause and quotes the line.
    let failed = log.steps.last().expect("a failed step");
    assert_eq!(failed.name, "roll out metrics-server");
    let message = failed.error.as_deref().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "likely cause: container metrics-server of pod {CRASHING} keeps exiting (exit code 1, Error)"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "evidence (logs/kube-system.{CRASHING}.metrics-server.previous.log): {FATAL}"
        )),
        "{message}"
    );
    let report = Report {
        schema_version: SCHEMA_VERSION,
        run: RunMeta {
            backend: Some(BackendKind::Kind),
            git_sha: None,
            started_at: "2026-11-28T09:58:00Z".into(),
            ended_at: "2026-11-28T10:01:00Z".into(),
            config: "stress.toml".into(),
            tool_versions: BTreeMap::new(),
            cpu_limit: None,
            memory_limit: None,
            pod_network: None,
            local_timing: None,
            workload: None,
            hpa_sync_period_s: Some(15.0),
            metric_resolution_s: Some(15.0),
            lanes: None,
        },
        setup: log.steps.iter().cloned().map(Into::into).collect(),
        scenarios: Vec::new(),
        comparisons: Vec::new(),
        baseline: Vec::new(),
        against_baseline: None,
    };
    let xml = junit::render(&report).expect("junit.xml");
    assert!(
        xml.contains(r#"<testcase name="roll out metrics-server""#),
        "{xml}"
    );
    assert!(
        xml.contains("metric-resolution should be larger than kubelet-request-timeout, but metric-resolution value 10s"),
        "the decisive line reaches junit.xml: {xml}"
    );
}
