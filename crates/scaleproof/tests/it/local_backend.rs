//! The local backend end to end: real iris-server replicas under real CPU limits
//! (cgroups, where this machine allows them), real load from the `load` module, and
//! the HPA port deciding the replica count.
//!
//! Timings are scaled for tests: metrics and HPA sync every second. The cost knob
//! makes one 200m replica saturate at ~10 req/s, so modest load is "too much".

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use scaleproof::local::{CgroupDriver, LocalCluster, LocalSettings};
use scaleproof::manifests::HpaOverrides;
use scaleproof_load::{self as load, LoadConfig, Stop};
use tokio_util::sync::CancellationToken;

/// These tests start real processes with real CPU limits on a 2-core machine and
/// check this process's cgroups afterwards: they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn settings(cost_ms: u32) -> LocalSettings {
    let mut s = LocalSettings::new(crate::support::iris_server(), crate::support::manifests());
    s.env_overrides = BTreeMap::from([("IRIS_CPU_COST_MS".to_string(), cost_ms.to_string())]);
    s
}

fn closed(concurrency: u32, seconds: u64) -> LoadConfig {
    LoadConfig::closed(concurrency, Stop::Duration(Duration::from_secs(seconds)))
}

/// Every replica process and cgroup of `cluster` is gone after `stop`.
async fn stop_and_check(cluster: LocalCluster, zero: Instant) -> scaleproof::local::LocalRun {
    let pids: Vec<u32> = cluster.replicas().iter().map(|r| r.pid).collect();
    let run = cluster.stop(zero).await;
    for pid in pids {
        assert!(
            !crate::support::is_running(pid),
            "replica pid {pid} survived stop"
        );
    }
    assert_eq!(
        crate::support::leftover_cgroups(),
        Vec::<std::path::PathBuf>::new()
    );
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_overload_scales_one_to_three_and_reports_too_many_replicas() {
    let _serial = SERIAL.lock().await;
    let cluster = LocalCluster::start(settings(20))
        .await
        .expect("replicas start");
    assert_eq!(cluster.replicas().len(), 1, "starts at minReplicas");
    let zero = Instant::now();
    let result = load::run(
        &closed(24, 14),
        &cluster.targets(),
        &CancellationToken::new(),
    )
    .await
    .expect("load runs");
    let run = stop_and_check(cluster, zero).await;
    let timeline = &run.timeline;

    assert!(result.sent > 50, "{result:?}");
    assert!(
        result.success_rate > 0.95,
        "success {:.3}",
        result.success_rate
    );
    assert_eq!(
        timeline.peak_desired_replicas(),
        3,
        "{:#?}",
        timeline.events
    );
    assert_eq!(timeline.peak_ready_replicas(), 3, "{:#?}", timeline.events);
    assert!(
        timeline.saw_condition("ScalingLimited", "True", "TooManyReplicas"),
        "conditions: {:#?}",
        timeline
            .samples
            .iter()
            .map(|s| &s.conditions)
            .collect::<Vec<_>>()
    );
    assert!(timeline.has_metrics());
    assert!(
        timeline.first_scale_up_s().is_some_and(|t| t < 8.0),
        "{:?}",
        timeline.first_scale_up_s()
    );
    if run.cpu_limit.is_capped() {
        // Capped at 200m, a saturated replica shows ~200 % of its 100m request.
        let peak = timeline
            .samples
            .iter()
            .filter_map(|s| s.cpu_utilization_pct)
            .max()
            .unwrap_or(0);
        assert!((120..=260).contains(&peak), "peak utilization {peak}%");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_max_replicas_one_it_stays_at_one_and_throughput_plateaus() {
    let _serial = SERIAL.lock().await;
    let mut s = settings(20);
    s.hpa_overrides = HpaOverrides {
        max_replicas: Some(1),
        ..Default::default()
    };
    let cluster = LocalCluster::start(s).await.expect("replicas start");
    let zero = Instant::now();
    let result = load::run(
        &closed(24, 10),
        &cluster.targets(),
        &CancellationToken::new(),
    )
    .await
    .expect("load runs");
    let run = stop_and_check(cluster, zero).await;

    assert_eq!(run.timeline.peak_desired_replicas(), 1);
    assert_eq!(run.timeline.peak_ready_replicas(), 1);
    assert!(
        run.timeline
            .samples
            .iter()
            .all(|s| s.current_replicas.unwrap_or(0) <= 1)
    );
    assert!(
        run.timeline
            .saw_condition("ScalingLimited", "True", "TooManyReplicas")
    );
    // Plateau: the second half is no faster than the first (one capped replica).
    let per_s: Vec<f64> = result
        .timeline
        .iter()
        .skip(1)
        .take(8)
        .map(|s| s.requests as f64)
        .collect();
    let (a, b) = per_s.split_at(per_s.len() / 2);
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    assert!(
        mean(b) <= mean(a) * 1.25,
        "first half {:.1}/s, second {:.1}/s",
        mean(a),
        mean(b)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_load_stops_it_returns_to_one_replica_within_the_window() {
    let _serial = SERIAL.lock().await;
    let mut s = settings(20);
    // A test HPA with a short scale-down window (the manifest's is 60 s).
    let mut hpa = s.manifests.hpa.clone();
    let behavior = hpa
        .spec
        .as_mut()
        .and_then(|spec| spec.behavior.as_mut())
        .expect("behavior");
    let down = behavior.scale_down.as_mut().expect("scaleDown");
    down.stabilization_window_seconds = Some(4);
    for policy in down.policies.iter_mut().flatten() {
        policy.value = 100;
        policy.period_seconds = 1;
    }
    s.manifests.hpa = hpa;
    s.controller.downscale_stabilization_window = Duration::from_secs(4);
    let window_s = 4.0;

    let cluster = LocalCluster::start(s).await.expect("replicas start");
    let zero = Instant::now();
    let result = load::run(
        &closed(24, 8),
        &cluster.targets(),
        &CancellationToken::new(),
    )
    .await
    .expect("load runs");
    let load_end = zero.elapsed().as_secs_f64();
    // Window + a few sync periods + the drain of the removed replicas.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let run = stop_and_check(cluster, zero).await;

    assert!(result.success_rate > 0.95);
    assert!(
        run.timeline.peak_desired_replicas() >= 2,
        "{:#?}",
        run.timeline.events
    );
    let back_at_one = run
        .timeline
        .samples
        .iter()
        .find(|s| s.t_s > load_end && s.desired_replicas == Some(1))
        .map(|s| s.t_s)
        .expect("scaled back to 1 after the load");
    assert!(
        back_at_one - load_end <= window_s + 4.0,
        "back at 1 replica {:.1} s after the load ended (window {window_s} s)",
        back_at_one - load_end
    );
    let last = run.timeline.samples.last().expect("samples");
    assert_eq!(
        (last.desired_replicas, last.current_replicas),
        (Some(1), Some(1)),
        "{:#?}",
        run.timeline.events
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_run_is_replaced_and_the_run_completes() {
    let _serial = SERIAL.lock().await;
    let mut s = settings(5);
    s.hpa_overrides = HpaOverrides {
        min_replicas: Some(2),
        ..Default::default()
    };
    let cluster = LocalCluster::start(s).await.expect("replicas start");
    let victim = cluster.replicas()[0].clone();
    let targets = cluster.targets();
    let cancel = CancellationToken::new();
    let zero = Instant::now();
    let load = tokio::spawn({
        let cancel = cancel.clone();
        async move { load::run(&closed(8, 8), &targets, &cancel).await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(victim.pid).expect("pid fits")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the replica");
    let result = load.await.expect("load task").expect("load runs");
    let run = stop_and_check(cluster, zero).await;

    assert!(!result.delivered_as_promised() || result.sent > 0);
    assert!(result.sent > 0 && result.ok > 0);
    assert!(
        run.timeline
            .events
            .iter()
            .any(|e| e.message.contains(&victim.name) && e.message.contains("exited unexpectedly")),
        "{:#?}",
        run.timeline.events
    );
    // The replica set was made whole again: 2 ready replicas at the end.
    let last = run.timeline.samples.last().expect("samples");
    assert!(last.ready_replicas >= 2, "{last:#?}");
    // Requests that were in flight on the killed replica fail; they are counted, not lost.
    assert_eq!(result.sent, result.ok + result.failed);
}

#[test]
fn nothing_is_left_behind_when_a_test_panics_midway() {
    let _serial = SERIAL.blocking_lock();
    let pids = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&pids);
    let outcome = std::panic::catch_unwind(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let cluster = LocalCluster::start(settings(0))
                .await
                .expect("replicas start");
            seen.lock()
                .expect("lock")
                .extend(cluster.replicas().iter().map(|r| r.pid));
            panic!("a test failing midway, with replicas running");
        })
    });
    assert!(outcome.is_err(), "the block panicked");
    let pids = pids.lock().expect("lock").clone();
    assert!(!pids.is_empty());
    // Dropping the cluster during unwinding killed the replicas and removed the cgroups.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| crate::support::is_running(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in pids {
        assert!(
            !crate::support::is_running(pid),
            "replica pid {pid} survived the panic"
        );
    }
    assert_eq!(
        crate::support::leftover_cgroups(),
        Vec::<std::path::PathBuf>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cgroup_permission_it_runs_uncapped_and_says_so() {
    let _serial = SERIAL.lock().await;
    let mut s = settings(0);
    s.cgroups = CgroupDriver::uncapped("test: no permission");
    let cluster = LocalCluster::start(s).await.expect("replicas start");
    assert!(!cluster.cpu_limit().is_capped());
    let result = load::run(
        &LoadConfig::closed(2, Stop::Requests(50)),
        &cluster.targets(),
        &CancellationToken::new(),
    )
    .await
    .expect("load runs");
    let run = stop_and_check(cluster, Instant::now()).await;
    assert_eq!(result.ok, 50);
    assert!(format!("{:?}", run.cpu_limit).contains("test: no permission"));
}
