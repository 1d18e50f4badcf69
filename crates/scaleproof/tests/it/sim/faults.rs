//! A flaky API server must not flip the verdict: faults the simulated API plays
//! (`scaleproof_sim::ApiFault`) during setup, reset and observation are ridden through
//! by the harness's bounded retries (`cluster::retry`) with the verdict the run
//! without them gives; a permanent one ends the run as infrastructure (exit 2) in a
//! bounded time, never as a red verdict on the service.

use std::time::{Duration, Instant};

use scaleproof::cluster::retry::{MAX_RETRIES, RETRY_BUDGET};
use scaleproof_sim::ApiFault;

use super::{SERIAL, Sim, SimOptions};
use crate::support::{run_stress_in, user_config};

fn fault(verb: &str, resource: &str, status: u16, times: u32) -> ApiFault {
    ApiFault {
        verb: Some(verb.into()),
        resource: Some(resource.into()),
        status,
        retry_after_s: (status == 429).then_some(1),
        times: Some(times),
    }
}

const SHORT_LOAD: &str = r#"
[[scenario]]
name = "steady"
rate = 4
duration_s = 6
[scenario.expect]
min_success_rate = 1.0
max_peak_replicas = 1
"#;

/// Transient errors while the workload is applied and waited for (setup): 503 on the
/// Deployment's apply, 429 with Retry-After on the list the rollout wait's watcher
/// starts with, 500 on the metrics wait's PodMetrics list. The setup succeeds, and every fault was played.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_api_errors_during_setup_are_ridden_through() {
    let _serial = SERIAL.lock().await;
    let sim = Sim::start(SimOptions {
        deploy: false,
        ..SimOptions::default()
    })
    .await;
    sim.cluster.inject(fault("patch", "deployments", 503, 3));
    sim.cluster.inject(fault("list", "deployments", 429, 2));
    sim.cluster.inject(fault("list", "podmetrics", 500, 2));
    let started = Instant::now();
    sim.deploy().await;
    assert_eq!(sim.cluster.faults_played(), 7, "every fault met a request");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    sim.stop().await;
}

/// Transient errors during the reset (HPA deleted and re-applied) and the
/// observation (HPA watch and reads, PodMetrics): the scenario is judged as without
/// them, every expectation held, no scenario error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_api_errors_during_reset_and_observation_keep_the_verdict() {
    let _serial = SERIAL.lock().await;
    let sim = Sim::start(SimOptions::default()).await;
    let ctx = sim.context(SHORT_LOAD);
    let clean = sim.run(&ctx, "steady").await;
    assert!(clean.passed(), "without faults: {:#?}", clean.verdicts);

    sim.cluster
        .inject(fault("delete", "horizontalpodautoscalers", 500, 1));
    sim.cluster
        .inject(fault("patch", "horizontalpodautoscalers", 503, 2));
    sim.cluster
        .inject(fault("get", "horizontalpodautoscalers", 429, 2));
    sim.cluster.inject(fault("list", "podmetrics", 503, 3));
    let faulted = sim.run(&ctx, "steady").await;
    assert!(sim.cluster.faults_played() > 0, "a fault was played");
    assert!(faulted.error.is_none(), "{:?}", faulted.error);
    assert_eq!(
        faulted
            .verdicts
            .iter()
            .map(|v| (v.check.clone(), v.passed()))
            .collect::<Vec<_>>(),
        clean
            .verdicts
            .iter()
            .map(|v| (v.check.clone(), v.passed()))
            .collect::<Vec<_>>(),
        "the same verdicts as without faults: {:#?}",
        faulted.verdicts
    );
    sim.stop().await;
}

/// A permanent 500 on the Deployment's apply: the gate exits 2 (infrastructure)
/// within the retry bound, and junit.xml's setup testcase says the API server
/// failed, with its words.
#[test]
fn a_permanent_500_ends_the_run_as_infrastructure_within_the_retry_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = user_config(&format!(
        r#"
[[backend.local.faults]]
verb = "patch"
resource = "deployments"
status = 500
{SHORT_LOAD}"#
    ));
    std::fs::write(dir.path().join("stress.toml"), config).expect("write stress.toml");
    let started = Instant::now();
    let output = run_stress_in(dir.path());
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "infrastructure:\n{stderr}");
    // One request's retries fit in RETRY_BUDGET; the cluster starts in seconds.
    let bound = RETRY_BUDGET + Duration::from_secs(40);
    assert!(took < bound, "took {took:?}, bound {bound:?}\n{stderr}");
    assert!(
        stderr.contains(&format!("giving up after {MAX_RETRIES} retries")),
        "the retries are logged and bounded:\n{stderr}"
    );
    let junit = std::fs::read_to_string(dir.path().join("out/junit.xml")).expect("junit.xml");
    assert!(
        junit.contains("API server answered 500")
            && junit.contains("infrastructure, not the service")
            && junit.contains("Internal error occurred: injected fault"),
        "the setup testcase names the API server's failure:\n{junit}"
    );
}

/// A replica SIGKILLed at the peak of a scale-up (as an eviction or a node's OOM
/// killer would end it): the scenario still scales and passes, and the report says
/// which container died, how (SIGKILL) and that it was restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_killed_at_peak_is_survived_and_reported() {
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
min_peak_replicas = 2
scale_up_within_s = 20
"#,
    );
    let killer = async {
        // When a second pod is ready, kill it (the first one carries the load alone
        // until then); bounded: give up after 60 s.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let pods = sim.pods().await;
            let ready: Vec<_> = pods
                .iter()
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .collect();
            if ready.len() >= 2
                && let Some(pid) = super::pid_of(ready[ready.len() - 1])
            {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .expect("kill a replica");
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    };
    let (report, killed) = tokio::join!(sim.run(&ctx, "overload"), killer);
    assert!(killed, "a second pod became ready to be killed");

    assert!(
        report.passed(),
        "{:#?}\n{:?}",
        report.verdicts,
        report.error
    );
    let said: Vec<&str> = report
        .timeline
        .events
        .iter()
        .map(|e| e.message.as_str())
        .filter(|m| m.contains("restarted"))
        .collect();
    assert!(
        said.iter()
            .any(|m| m.contains("container iris-server of pod") && m.contains("SIGKILL")),
        "the report names the killed container and the signal: {:#?}",
        report.timeline.events
    );
    sim.stop().await;
}
