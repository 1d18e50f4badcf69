//! Memory on the simulated cluster: the working set metrics-server would serve (from
//! the replica's memory cgroup), the manifest's memory limit enforced by the kernel
//! (an OOM kill reported as the kubelet reports it), and an HPA with CPU and memory
//! metrics whose scale-up memory drives, named as such in the report.
//!
//! Both tests need a writable memory controller; without one they say so loudly and
//! pass without checking (the RSS fallback is what such a machine gets).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_metrics::v1beta1::PodMetrics;
use k8s_openapi::api::autoscaling::v2::{MetricSpec, MetricTarget, ResourceMetricSource};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Api;
use kube::api::ListParams;
use scaleproof_sim::CgroupDriver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{NS, SELECTOR, SERIAL, Sim, SimOptions};

/// Whether this machine lets us create memory cgroups; prints why not.
pub(super) fn memory_controller_or_skip(test: &str) -> bool {
    match CgroupDriver::detect().memory_mode() {
        scaleproof_sim::MemoryMode::Unavailable { reason } => {
            eprintln!(
                "!!! SKIPPED {test}: no writable memory cgroup controller ({reason}); \
                 memory limits and the working set cannot be tested here !!!"
            );
            false
        }
        _ => true,
    }
}

/// Sets the first container's memory request and limit.
fn set_memory(sim: &mut Sim, request: &str, limit: &str) {
    let container = sim
        .prepared
        .deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .and_then(|p| p.containers.first_mut())
        .expect("a container");
    let resources = container.resources.get_or_insert_with(Default::default);
    resources
        .requests
        .get_or_insert_with(BTreeMap::new)
        .insert("memory".into(), Quantity(request.into()));
    resources
        .limits
        .get_or_insert_with(BTreeMap::new)
        .insert("memory".into(), Quantity(limit.into()));
}

/// One prediction request through the NodePort; the status code, or `None` when
/// the connection broke (the replica died mid-request).
pub(super) async fn predict(load_url: &str) -> Option<u16> {
    let host = load_url.trim_start_matches("http://").trim_end_matches('/');
    let body =
        r#"{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}"#;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
        let request = format!(
            "POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response);
        text.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

fn iris_env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_memory_limit_is_oom_killed_and_reported_as_oomkilled() {
    if !memory_controller_or_skip("the OOM-kill test") {
        return;
    }
    let _serial = SERIAL.lock().await;
    // 48Mi limit; one request holds 96 MiB (for 2 s): the kernel must kill it.
    let mut sim = Sim::start(SimOptions {
        env: iris_env(&[
            ("IRIS_CPU_COST_MS", "0"),
            ("IRIS_MEMORY_COST_MIB", "96"),
            ("IRIS_MEMORY_HOLD_MS", "4000"),
        ]),
        deploy: false,
        ..SimOptions::default()
    })
    .await;
    set_memory(&mut sim, "32Mi", "48Mi");
    sim.deploy().await;

    // The working set at rest, as PodMetrics serves it: the idle server is far below
    // its 48Mi limit (and a replica this small proves the limit, not the RSS, bites).
    let metrics: Api<PodMetrics> = Api::namespaced(sim.client.clone(), NS);
    let idle = metrics
        .list(&ListParams::default().labels(SELECTOR))
        .await
        .expect("PodMetrics list")
        .items;
    let idle_bytes = idle[0].memory().expect("memory quantity");
    eprintln!("idle working set: {:.1} MiB", idle_bytes as f64 / 1048576.0);
    assert!(idle_bytes > 0 && idle_bytes < 48 << 20, "{idle_bytes}");

    let pods = sim.pods().await;
    let name = pods[0].metadata.name.clone().expect("pod name");
    let status = predict(
        &sim.cluster
            .node_port_url(30080)
            .expect("node port 30080 listens"),
    )
    .await;
    assert_ne!(
        status,
        Some(200),
        "a request over the limit must not succeed"
    );

    let api: Api<Pod> = Api::namespaced(sim.client.clone(), NS);
    let deadline = Instant::now() + Duration::from_secs(30);
    let terminated = loop {
        let pod = api.get(&name).await.expect("pod");
        let last = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.last_state.as_ref())
            .and_then(|s| s.terminated.clone());
        if let Some(terminated) = last {
            break terminated;
        }
        assert!(
            Instant::now() < deadline,
            "no lastState.terminated within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // As the kubelet reports a container the kernel OOM-killed.
    assert_eq!(terminated.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(terminated.exit_code, 137);
    sim.stop().await;
}

/// Light on CPU, heavy on memory: 4 clients, each request holding 6 MiB for 4 s
/// without CPU work, so one pod holds 24 MiB over its idle working set (3 times the
/// 8Mi target) at 1 req/s. Writing memory is not free (~1.1 ms of CPU per MiB here,
/// the kernel's page faults, measured), so the start, when all 4 allocate at once,
/// costs ~30 ms of CPU in the first second: ~30 % of the 100m request, below the 50 %
/// target, and ~8 % after. Closed loop: an open loop of 4 s requests keeps opening
/// connections as its in-flight count grows, and on a busy 2-core machine some start
/// late. The HPA has both metrics; memory's proposal is the largest.
const MEMORY_BOUND: &str = r#"
[[scenario]]
name = "memory-bound"
concurrency = 4
duration_s = 20
[scenario.expect]
min_success_rate = 0.95
scale_up_within_s = 15
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_drives_a_scale_up_when_cpu_stays_low() {
    if !memory_controller_or_skip("the memory scale-up test") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let sim = Sim::start(SimOptions {
        env: iris_env(&[
            ("IRIS_CPU_COST_MS", "0"),
            ("IRIS_MEMORY_COST_MIB", "6"),
            ("IRIS_MEMORY_HOLD_MS", "4000"),
        ]),
        ..SimOptions::default()
    })
    .await;
    let mut ctx = sim.context(MEMORY_BOUND);
    // k8s/'s HPA (cpu at 50 % of the request) plus memory at 8Mi per pod on average
    // (the idle working set here is well under 1 MiB: see the OOM test's figure).
    let spec = ctx.manifests.hpa.spec.as_mut().expect("HPA spec");
    spec.metrics.get_or_insert_with(Vec::new).push(MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: "memory".into(),
            target: MetricTarget {
                type_: "AverageValue".into(),
                average_value: Some(Quantity("8Mi".into())),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    });
    let report = sim.run(&ctx, "memory-bound").await;
    let failed: Vec<_> = report
        .verdicts
        .iter()
        .filter(|v| !v.passed())
        .map(|v| {
            format!(
                "{}: expected {}, measured {}",
                v.check, v.expected, v.measured
            )
        })
        .collect();
    let metrics: Vec<_> = report
        .timeline
        .samples
        .iter()
        .map(|s| (s.t_s, s.desired_replicas, &s.metrics))
        .collect();
    assert!(
        failed.is_empty(),
        "{failed:#?}\n{:#?}\n{metrics:#?}",
        report.timeline.events
    );
    let peak = report.timeline.peak_desired_replicas();
    assert!(
        peak > 1,
        "replicas rose above 1: {:#?}",
        report.timeline.events
    );

    // The report names memory as the driver of the scale-up, and cpu proposed less.
    // A rescale at the HPA's first sync (the load may start before it) counts too.
    let scale_up = report
        .timeline
        .events
        .iter()
        .find(|e| {
            e.message.starts_with("scaled 1 -> ")
                || e.message
                    .starts_with("HPA synced for the first time: desired ")
                    && !e
                        .message
                        .starts_with("HPA synced for the first time: desired 1")
        })
        .unwrap_or_else(|| panic!("no scale-up event: {:#?}", report.timeline.events));
    assert!(
        scale_up.message.contains(" on memory: memory average"),
        "{}\n{metrics:#?}",
        scale_up.message
    );
    let at_scale_up = report
        .timeline
        .samples
        .iter()
        .find(|s| s.desired_replicas.is_some_and(|d| d > 1))
        .expect("a sample after the scale-up");
    let proposal = |name: &str| {
        at_scale_up
            .metrics
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.proposal_replicas)
    };
    assert!(
        proposal("memory") > proposal("cpu"),
        "{:#?}",
        at_scale_up.metrics
    );
    let per_pod: Vec<String> = at_scale_up
        .replicas
        .iter()
        .map(|r| format!("{:.1}", r.memory_bytes.unwrap_or(0) as f64 / 1048576.0))
        .collect();
    eprintln!(
        "scale-up at {:?} s: {}; pods' working set MiB: {per_pod:?}; whole test {:.1} s",
        report
            .timeline
            .samples
            .iter()
            .find(|s| s.desired_replicas.is_some_and(|d| d > 1))
            .map(|s| s.t_s),
        scale_up.message,
        started.elapsed().as_secs_f64()
    );
    sim.stop().await;
}

// A node's runtime puts the container in its cgroups before it runs an instruction, so
// a memory limit below what the process needs to start is an OOM kill at start, and
// the rollout never completes. The simulated kubelet joins the groups before exec
// (replica.rs), so the same manifest fails here, naming OOMKilled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_limit_too_small_to_start_in_is_oomkilled_at_start() {
    if !memory_controller_or_skip("the start-up OOM test") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let mut sim = Sim::start(SimOptions {
        deploy: false,
        ..SimOptions::default()
    })
    .await;
    // iris-server peaks at ~512 KiB of charged memory while it starts (its binary's
    // pages are already in the page cache, charged elsewhere): 256Ki cannot hold it.
    set_memory(&mut sim, "256Ki", "256Ki");
    scaleproof::cluster::apply::apply_workload(&sim.client, &sim.prepared)
        .await
        .expect("k8s/ applies");
    let target = &sim.prepared.target;
    let failure = scaleproof::cluster::rollout::wait_for_rollout(
        &sim.client,
        NS,
        &target.deployment,
        &target.selector,
        Duration::from_secs(15),
    )
    .await
    .expect_err("a process cannot start in 256Ki");
    let text = failure.to_string();
    assert!(text.contains("OOMKilled"), "{text}");
    let pods: Api<Pod> = Api::namespaced(sim.client.clone(), NS);
    let pod = &pods
        .list(&ListParams::default().labels(SELECTOR))
        .await
        .expect("pods")
        .items[0];
    let status = &pod
        .status
        .as_ref()
        .expect("status")
        .container_statuses
        .as_ref()
        .expect("containers")[0];
    let terminated = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("a terminated last state");
    assert_eq!(
        terminated.reason.as_deref(),
        Some("OOMKilled"),
        "{status:?}"
    );
    assert_eq!(terminated.exit_code, 137);
    sim.stop().await;
}
