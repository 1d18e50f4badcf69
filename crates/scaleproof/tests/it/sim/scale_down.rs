//! Scale-in, judged on the real path: a staged load drops to a trickle, the HPA
//! (its scale-down window shortened through `[scenario.hpa.behavior]`, its policy
//! the manifest's) brings the workload back to one pod, and the requests that
//! failed while pods were terminating are counted. With the kubelet's termination
//! order defeated on purpose, that count must catch it.

use std::time::Duration;

use scaleproof_sim::TerminationOrder;

use super::{SERIAL, Sim, SimOptions};

/// Load 0 -> 120 req/s (three pods' worth at 5 ms each), held, then 4 req/s (~20m
/// of CPU, well under one pod's 50m target) until the HPA is back at 1.
const SCALE_IN: &str = r#"
[[scenario]]
name = "scale-in"
[[scenario.stages]]
duration_s = 4
rate = 120
[[scenario.stages]]
duration_s = 8
rate = 120
[[scenario.stages]]
name = "trickle"
duration_s = 1
rate = 4
[[scenario.stages]]
duration_s = 40
rate = 4
[scenario.hpa.behavior.scaleDown]
stabilizationWindowSeconds = 5
[scenario.expect]
min_peak_replicas = 2
scale_down_within_s = 45
scale_down_from = "trickle"
max_failed_during_scale_down = 0
max_replica_direction_changes = 2
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_defeated_drain_fails_max_failed_during_scale_down() {
    let _serial = SERIAL.lock().await;
    // SIGKILL on deletion while kube-proxy (here: the NodePort) still routes to the
    // pod for 3 s: what a pod without a preStop pause and drain would see.
    let sim = Sim::start(SimOptions {
        termination: TerminationOrder::Abrupt {
            endpoint_lag: Duration::from_secs(3),
        },
        ..SimOptions::default()
    })
    .await;
    let ctx = sim.context(SCALE_IN);
    let report = sim.run(&ctx, "scale-in").await;
    let verdict = |check: &str| {
        report
            .verdicts
            .iter()
            .find(|v| v.check == check)
            .unwrap_or_else(|| panic!("no {check} in {:#?}", report.verdicts))
            .clone()
    };
    // The scale-down happened, within the window the shortened behavior allows...
    assert!(
        verdict("min_peak_replicas").passed(),
        "{:#?}",
        report.verdicts
    );
    assert!(
        verdict("scale_down_within_s").passed(),
        "{:#?}",
        report.verdicts
    );
    // ...and the requests that hit the killed pods are counted against it.
    let failed = verdict("max_failed_during_scale_down");
    assert!(!failed.passed(), "{failed:#?}");
    assert!(
        failed
            .measured
            .contains("failed while pods were terminating"),
        "{failed:#?}"
    );
    // report.json shows the HPA as applied: the scenario's window, the manifest's
    // policy (50 % per 15 s).
    let hpa = report.hpa.as_ref().expect("the applied HPA");
    let down = &hpa["behavior"]["scaleDown"];
    assert_eq!(down["stabilizationWindowSeconds"], 5, "{hpa:#}");
    assert_eq!(down["policies"][0]["type"], "Percent", "{hpa:#}");
    assert_eq!(down["policies"][0]["value"], 50, "{hpa:#}");
    // One series across the stages, and each stage accounted for.
    let load = report.load.as_ref().expect("load ran");
    assert_eq!(load.stages.len(), 4);
    let names: Vec<Option<&str>> = load.stages.iter().map(|s| s.name.as_deref()).collect();
    assert_eq!(names, [None, None, Some("trickle"), None]);
    assert!(load.timeline.len() >= 50, "{} seconds", load.timeline.len());
    sim.stop().await;
}
