//! Pods as the kubelet runs them (restarts, back-off, graceful termination in the
//! kubelet's order) and cleanup that holds after a panic, without cgroups, and after
//! the harness itself is SIGKILLed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, LogParams, Patch, PatchParams};
use scaleproof::cluster::{self, rollout};
use scaleproof_load::{self as load, LoadConfig, Stop, Targets};
use scaleproof_sim::{CgroupDriver, SimCluster, SimSettings, Timing, TimingPreset};
use tokio_util::sync::CancellationToken;

use super::{NS, SERIAL, Sim, SimOptions, pid_of};

/// Polls `check` every 200 ms until it gives `Some`, for at most `limit`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn container_status(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.first()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_is_restarted_and_its_previous_log_kept() {
    let _serial = SERIAL.lock().await;
    let sim = Sim::start(SimOptions::default()).await;
    let pods = sim.pods().await;
    let name = pods[0].metadata.name.clone().expect("pod name");
    let first_pid = pid_of(&pods[0]).expect("container pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(first_pid).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the container");

    let api: Api<Pod> = Api::namespaced(sim.client.clone(), NS);
    let restarted = eventually(Duration::from_secs(30), "restart and ready", || async {
        let pod = api.get(&name).await.ok()?;
        let status = container_status(&pod)?;
        (status.restart_count == 1 && status.ready).then_some(pod)
    })
    .await;
    let status = container_status(&restarted).expect("status");
    let terminated = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("lastState.terminated");
    assert_eq!(
        terminated.exit_code, 137,
        "SIGKILL, as the runtime reports it"
    );
    assert_eq!(terminated.reason.as_deref(), Some("Error"));
    assert_ne!(pid_of(&restarted), Some(first_pid), "a new process");

    let previous = api
        .logs(
            &name,
            &LogParams {
                previous: true,
                ..LogParams::default()
            },
        )
        .await
        .expect("the previous container's log");
    assert!(!previous.is_empty(), "the killed run had logged its start");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_pod_fails_the_rollout_and_the_bundle_says_why() {
    let _serial = SERIAL.lock().await;
    let sim = Sim::start(SimOptions {
        env: BTreeMap::from([("IRIS_CPU_COST_MS".into(), "-1".into())]),
        deploy: false,
        ..SimOptions::default()
    })
    .await;
    cluster::apply::apply_workload(&sim.client, &sim.prepared)
        .await
        .expect("k8s/ applies");
    let target = &sim.prepared.target;
    let error = rollout::wait_for_rollout(
        &sim.client,
        NS,
        &target.deployment,
        &target.selector,
        Duration::from_secs(25),
    )
    .await
    .expect_err("a pod that exits at start never rolls out");
    let text = error.to_string();
    assert!(text.contains("CrashLoopBackOff"), "{text}");
    assert!(
        text.contains("cpu-cost-ms"),
        "the log's decisive line: {text}"
    );

    let bundle_dir = sim.dir.path().join("diagnostics");
    let bundle = cluster::diagnostics::write_bundle(&sim.client, target, &bundle_dir)
        .await
        .expect("bundle");
    let logs: Vec<String> = std::fs::read_dir(bundle_dir.join("logs"))
        .expect("logs dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        logs.iter().any(|l| l.contains("previous")),
        "the crashed run's log is in the bundle: {logs:?} {:?}",
        bundle.parts
    );
    sim.stop().await;
}

/// Two pods behind the NodePort, one deleted while load runs: the kubelet takes it
/// out of the endpoints, runs its preStop, then sends SIGTERM, and the server
/// drains, so no request is lost, and the Deployment replaces the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_under_load_loses_no_request() {
    let _serial = SERIAL.lock().await;
    let sim = Sim::start(SimOptions::default()).await;
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(sim.client.clone(), NS);
    hpas.patch(
        "iris-classifier-hpa",
        &PatchParams::apply("a-test").force(),
        &Patch::Apply(serde_json::json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "iris-classifier-hpa"},
            "spec": {"minReplicas": 2},
        })),
    )
    .await
    .expect("minReplicas 2 applies");
    let pods = eventually(Duration::from_secs(30), "two ready pods", || async {
        let pods = sim.pods().await;
        let ready = pods
            .iter()
            .filter(|p| container_status(p).is_some_and(|s| s.ready))
            .count();
        (ready == 2).then_some(pods)
    })
    .await;
    let victim = pods[0].metadata.name.clone().expect("pod name");

    let config = LoadConfig {
        requests_per_connection: Some(1),
        ..LoadConfig::closed(4, Stop::Duration(Duration::from_secs(8)))
    };
    let targets = Targets::parse([sim
        .cluster
        .node_port_url(30080)
        .expect("node port 30080 listens")
        .as_str()])
    .expect("load URL");
    let cancel = CancellationToken::new();
    let running = tokio::spawn(async move { load::run(&config, &targets, &cancel).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api: Api<Pod> = Api::namespaced(sim.client.clone(), NS);
    api.delete(&victim, &DeleteParams::default())
        .await
        .expect("delete the pod");
    let result = running.await.expect("load task").expect("load runs");
    assert!(result.ok > 50, "{result:?}");
    assert_eq!(result.failed, 0, "{result:?}");

    let replaced = eventually(Duration::from_secs(45), "the pod replaced", || async {
        let pods = sim.pods().await;
        let gone = pods
            .iter()
            .all(|p| p.metadata.name.as_deref() != Some(&victim));
        let ready = pods
            .iter()
            .filter(|p| container_status(p).is_some_and(|s| s.ready))
            .count();
        // The load may have made the HPA add a third.
        (gone && ready >= 2).then_some(pods)
    })
    .await;
    assert!(replaced.len() >= 2);
    sim.stop().await;
}

#[test]
fn nothing_is_left_behind_when_a_test_panics_midway() {
    let _serial = SERIAL.blocking_lock();
    let pids = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&pids);
    let outcome = std::panic::catch_unwind(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let sim = Sim::start(SimOptions::default()).await;
            let pids = sim.pids().await;
            seen.lock().expect("lock").extend(pids);
            panic!("a test failing midway, with pods running");
        })
    });
    assert!(outcome.is_err(), "the block panicked");
    let pids = pids.lock().expect("lock").clone();
    assert!(!pids.is_empty());
    // Dropping the cluster during unwinding killed the pods and removed the cgroups.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| crate::support::is_running(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in pids {
        assert!(
            !crate::support::is_running(pid),
            "pod pid {pid} survived the panic"
        );
    }
    assert_eq!(crate::support::leftover_cgroups(), Vec::<PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cgroup_permission_it_runs_uncapped_and_says_so() {
    let _serial = SERIAL.lock().await;
    let sim = Sim::start(SimOptions {
        cgroups: CgroupDriver::uncapped("test: no permission"),
        ..SimOptions::default()
    })
    .await;
    assert!(!sim.cluster.cpu_limit().is_capped());
    assert!(format!("{:?}", sim.cluster.cpu_limit()).contains("test: no permission"));
    let targets = Targets::parse([sim
        .cluster
        .node_port_url(30080)
        .expect("node port 30080 listens")
        .as_str()])
    .expect("load URL");
    let result = load::run(
        &LoadConfig::closed(2, Stop::Requests(50)),
        &targets,
        &CancellationToken::new(),
    )
    .await
    .expect("load runs");
    assert_eq!(result.ok, 50);
    sim.stop().await;
}

/// The variable that turns [`child_harness_for_the_sigkill_test`] on: the directory
/// it works in.
const CHILD_DIR: &str = "SCALEPROOF_TEST_SIGKILL_CHILD";

/// A harness that gets SIGKILLed: it starts a cluster, says which pods it runs, and
/// waits (at most two minutes) to be killed. Only runs as the child of
/// [`a_sigkilled_harness_leaves_nothing_after_the_next_run`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child half of a_sigkilled_harness_leaves_nothing_after_the_next_run"]
async fn child_harness_for_the_sigkill_test() {
    let Some(dir) = std::env::var_os(CHILD_DIR).map(PathBuf::from) else {
        return;
    };
    let sim = Sim::start(SimOptions {
        dir_in: Some(dir.clone()),
        ..SimOptions::default()
    })
    .await;
    let pids: Vec<String> = sim.pids().await.iter().map(u32::to_string).collect();
    std::fs::write(dir.join("pids.tmp"), pids.join("\n")).expect("write pids");
    std::fs::rename(dir.join("pids.tmp"), dir.join("pids")).expect("publish pids");
    tokio::time::sleep(Duration::from_secs(120)).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_harness_leaves_nothing_after_the_next_run() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "sim::lifecycle::child_harness_for_the_sigkill_test",
            "--exact",
            "--ignored",
            "--quiet",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the child harness");
    let child_pid = child.id();
    let pids_file = dir.path().join("pids");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pids_file.exists() && Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the child harness ended early: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pids: Vec<u32> = std::fs::read_to_string(&pids_file)
        .expect("the child wrote its pod pids")
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert!(!pids.is_empty());
    child.kill().expect("SIGKILL the child harness");
    child.wait().expect("reap the child harness");
    // Nothing cleaned up after it: its pods run on, orphaned.
    assert!(pids.iter().all(|p| crate::support::is_running(*p)));

    // The next run sweeps what the dead one left: processes, cgroups, registry.
    let cgroups = CgroupDriver::detect();
    let next = SimCluster::start(SimSettings {
        containers: crate::support::iris_containers(),
        cgroups: cgroups.clone(),
        log_dir: dir.path().join("next-logs"),
        timing: Timing::preset(TimingPreset::Fast),
        termination: Default::default(),
        seed: 1,
        pod_namespaces: true,
        faults: Vec::new(),
        disruptions: Vec::new(),
    })
    .await
    .expect("the next run starts");
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| crate::support::is_running(*p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in &pids {
        assert!(
            !crate::support::is_running(*pid),
            "pod pid {pid} survived the sweep"
        );
    }
    assert_eq!(
        crate::support::leftover_cgroups_of(child_pid),
        Vec::<PathBuf>::new()
    );
    assert!(
        !std::env::temp_dir()
            .join("scaleproof-runs")
            .join(child_pid.to_string())
            .exists(),
        "the dead run's registry is removed"
    );
    next.stop().await;
}

// A readiness probe that never passes can only end in the rollout's timeout; the wait
// names the probe and its last error long before that, as soon as the rollout stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_never_passes_is_named_before_the_timeout() {
    let _serial = super::SERIAL.lock().await;
    let mut sim = super::Sim::start(super::SimOptions {
        deploy: false,
        ..super::SimOptions::default()
    })
    .await;
    let container = sim
        .prepared
        .deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .and_then(|p| p.containers.first_mut())
        .expect("a container");
    let probe = container
        .readiness_probe
        .as_mut()
        .expect("a readiness probe");
    probe.http_get.as_mut().expect("httpGet").path = Some("/no-such-path".into());
    scaleproof::cluster::apply::apply_workload(&sim.client, &sim.prepared)
        .await
        .expect("k8s/ applies");
    let target = &sim.prepared.target;
    let error = scaleproof::cluster::rollout::wait_for_rollout(
        &sim.client,
        super::NS,
        &target.deployment,
        &target.selector,
        Duration::from_secs(40),
    )
    .await
    .expect_err("the probe never passes");
    let scaleproof::cluster::ClusterError::Rollout(failure) = &error else {
        panic!("not a rollout failure: {error}");
    };
    let (after, cause) = failure
        .early_notices
        .first()
        .unwrap_or_else(|| panic!("nothing said before the timeout: {error}"));
    assert!(*after < 40, "said after {after}s");
    assert!(cause.contains("httpGet /no-such-path"), "{cause}");
    assert!(
        cause.contains("last failure") && cause.contains("Unhealthy"),
        "{cause}"
    );
    sim.stop().await;
}

/// The pod's container args as the API server stores them.
fn container_args(sim: &mut super::Sim) -> &mut Vec<String> {
    sim.prepared
        .deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .and_then(|p| p.containers.first_mut())
        .and_then(|c| c.args.as_mut())
        .expect("k8s/ gives the container args")
}

/// Whether this machine gives pods network namespaces; prints why not.
fn pod_namespaces_or_skip(sim: &super::Sim, test: &str) -> bool {
    match sim.cluster.pod_network() {
        scaleproof_sim::PodNetwork::Namespaces(_) => true,
        other => {
            eprintln!("!!! SKIPPED {test}: {} !!!", other.describe());
            false
        }
    }
}

// As on a node, the container runs with the args of its manifest, unchanged, and is
// reached at its pod's IP and containerPort.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containers_args_reach_the_process_unchanged() {
    let _serial = SERIAL.lock().await;
    let sim = Sim::start(SimOptions::default()).await;
    if !pod_namespaces_or_skip(&sim, "the args test") {
        sim.stop().await;
        return;
    }
    let written: Vec<String> = sim
        .prepared
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.args.clone())
        .expect("args");
    let pod = sim.pods().await.into_iter().next().expect("a pod");
    let pid = pid_of(&pod).expect("a running container");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("its command line");
    let argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(argv[1..], written[..], "argv {argv:?}");
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("a pod IP");
    assert!(ip.starts_with("10."), "{ip}");
    sim.stop().await;
}

// A port in the args that is not the containerPort: on a node the probe, which goes
// to the containerPort, never passes and the rollout never completes. So here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_listening_on_the_wrong_port_never_becomes_ready() {
    let _serial = SERIAL.lock().await;
    let mut sim = Sim::start(SimOptions {
        deploy: false,
        ..SimOptions::default()
    })
    .await;
    if !pod_namespaces_or_skip(&sim, "the wrong-port test") {
        sim.stop().await;
        return;
    }
    let args = container_args(&mut sim);
    let at = args
        .iter()
        .position(|a| a == "--port")
        .expect("--port in k8s/");
    args[at + 1] = "8001".into();
    cluster::apply::apply_workload(&sim.client, &sim.prepared)
        .await
        .expect("k8s/ applies");
    let target = &sim.prepared.target;
    let error = rollout::wait_for_rollout(
        &sim.client,
        NS,
        &target.deployment,
        &target.selector,
        Duration::from_secs(25),
    )
    .await
    .expect_err("nothing listens on the containerPort");
    let text = error.to_string();
    assert!(
        text.contains("httpGet /ready on port http") && text.contains("Connection refused"),
        "{text}"
    );
    sim.stop().await;
}
