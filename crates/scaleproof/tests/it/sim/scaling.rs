//! Scenarios on the simulated cluster through `gate::run_scenario`: the reset, the
//! observer and the verdicts the PR gate uses, with the HPA port scaling real pods.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use scaleproof::report::ScenarioReport;

use super::{NS, SERIAL, Sim, SimOptions};

fn verdict<'a>(report: &'a ScenarioReport, check: &str) -> &'a scaleproof::report::VerdictReport {
    report
        .verdicts
        .iter()
        .find(|v| v.check == check)
        .unwrap_or_else(|| panic!("no verdict {check} in {:#?}", report.verdicts))
}

fn failed(report: &ScenarioReport) -> Vec<String> {
    report
        .verdicts
        .iter()
        .filter(|v| !v.passed())
        .map(|v| {
            format!(
                "{}: expected {}, measured {}",
                v.check, v.expected, v.measured
            )
        })
        .chain(report.error.iter().map(|e| format!("error: {e:?}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_overload_scales_one_to_three_and_back_to_one() {
    let _serial = SERIAL.lock().await;
    let sim = Sim::start(SimOptions::default()).await;
    let ctx = sim.context(
        r#"
[[scenario]]
name = "overload"
requests = 1500
concurrency = 24
[scenario.expect]
min_success_rate = 0.95
reaches_max_replicas = true
scale_up_within_s = 20
"#,
    );
    let report = sim.run(&ctx, "overload").await;
    assert!(failed(&report).is_empty(), "{:#?}", failed(&report));
    assert_eq!(
        report.timeline.start_replicas,
        Some(1),
        "the reset left one pod"
    );
    assert!(report.reset_s.is_some());
    let load = report.load.as_ref().expect("load ran");
    assert_eq!(load.sent, load.ok + load.failed, "every request is counted");

    // The HPA controller said why, in upstream's words.
    let events: Api<Event> = Api::namespaced(sim.client.clone(), NS);
    let rescales: Vec<String> = events
        .list(&ListParams::default().fields("reason=SuccessfulRescale"))
        .await
        .expect("events list")
        .items
        .into_iter()
        .filter_map(|e| e.message)
        .collect();
    assert!(
        rescales
            .iter()
            .any(|m| m.starts_with("New size: ") && m.contains("above target")),
        "{rescales:?}"
    );

    // Scale-in: shorten the scale-down window the way a user would (behavior), and
    // the idle workload goes back to minReplicas.
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(sim.client.clone(), NS);
    let behavior = serde_json::json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "iris-classifier-hpa"},
        "spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 3}}},
    });
    hpas.patch(
        "iris-classifier-hpa",
        &PatchParams::apply("a-test").force(),
        &Patch::Apply(behavior),
    )
    .await
    .expect("behavior applies");
    let deployments: Api<Deployment> = Api::namespaced(sim.client.clone(), NS);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut replicas = None;
    while Instant::now() < deadline {
        let d = deployments
            .get("iris-classifier")
            .await
            .expect("deployment");
        replicas = d.spec.and_then(|s| s.replicas);
        if replicas == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(replicas, Some(1), "back to minReplicas within 60 s");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_max_replicas_one_it_stays_at_one_and_throughput_plateaus() {
    let _serial = SERIAL.lock().await;
    let sim = Sim::start(SimOptions::default()).await;
    let ctx = sim.context(
        r#"
[[scenario]]
name = "restricted"
requests = 600
concurrency = 24
[scenario.hpa]
max_replicas = 1
[scenario.expect]
max_peak_replicas = 1
throughput_plateaus = true
"#,
    );
    let report = sim.run(&ctx, "restricted").await;
    assert!(failed(&report).is_empty(), "{:#?}", failed(&report));
    assert_eq!(report.bounds.max, 1);
    // The HPA wanted more and said it could not: ScalingLimited, TooManyReplicas.
    assert!(
        report.timeline.samples.iter().any(|s| s
            .conditions
            .iter()
            .any(|c| c.type_ == "ScalingLimited" && c.status == "True")),
        "{:#?}",
        report.timeline.samples.last()
    );
    sim.stop().await;
}

/// The false green this harness once had: an HPA has no status until its first sync
/// (it reads `desiredReplicas: 0`), and taking that 0 as a replica count made the
/// first sync look like a scale-up. A load that cannot make the HPA scale (2 req/s
/// of 5 ms each: ~10m of CPU against a 50m target) must fail
/// `scale_up_within_s`, on the real path: reset, fresh HPA, observer, verdicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_cannot_scale_fails_scale_up_within() {
    let _serial = SERIAL.lock().await;
    let sim = Sim::start(SimOptions::default()).await;
    let ctx = sim.context(
        r#"
[[scenario]]
name = "trickle"
requests = 12
rate = 2
observe_after_s = 2
[scenario.expect]
min_success_rate = 1.0
scale_up_within_s = 10
"#,
    );
    let report = sim.run(&ctx, "trickle").await;
    let first = report.timeline.samples.first().expect("samples");
    assert_eq!(
        first.desired_replicas, None,
        "the load started before the HPA's first sync: {first:#?}"
    );
    assert!(
        report
            .timeline
            .samples
            .iter()
            .any(|s| s.desired_replicas == Some(1)),
        "the HPA synced during the scenario"
    );
    assert!(verdict(&report, "min_success_rate").passed());
    let scale_up = verdict(&report, "scale_up_within_s");
    assert!(!scale_up.passed(), "{scale_up:#?}");
    assert_eq!(scale_up.measured, "no scale-up");
    assert_eq!(report.first_scale_up_s, None);
    sim.stop().await;
}
