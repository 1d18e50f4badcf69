//! Fresh namespaces on the simulated cluster (`cluster::fresh`): two scenarios'
//! namespaces prepared at once from the same `k8s/`, each on its own node port and
//! serving only through it; a third on a port another holds refused with the API
//! server's words; a deleted namespace's port closed and free for the next; a pod
//! whose start-up goes on after it is ready handed over at one replica, its HPA not
//! having judged the start-up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use scaleproof::cluster::{self, HpaOverrides, Prepared, fresh};
use scaleproof_sim::LocalProgram;

use super::memory::predict;
use super::{SERIAL, Sim, SimOptions};

/// `k8s/` for namespace `namespace` on node port `node_port`, with the fixture's
/// cost knob.
fn fresh_objects(namespace: &str, node_port: u16) -> Prepared {
    let mut prepared = Prepared::new(
        &crate::support::manifests(),
        namespace,
        "iris-server:local",
        None,
        &HpaOverrides::default(),
    )
    .expect("k8s/ prepares")
    .with_node_port(node_port);
    let env = SimOptions::default().env;
    cluster::objects::set_env(&mut prepared.deployment, None, &env);
    prepared
}

/// The pod's CPU request in k8s/ (100m); the HPA's 50 % target makes 50m "idle".
const CPU_REQUEST_MILLICORES: u64 = 100;

async fn prepare(
    sim: &Sim,
    prepared: &Prepared,
) -> Result<fresh::FreshReport, cluster::ClusterError> {
    prepare_within(sim, prepared, Duration::from_secs(90)).await
}

async fn prepare_within(
    sim: &Sim,
    prepared: &Prepared,
    timeout: Duration,
) -> Result<fresh::FreshReport, cluster::ClusterError> {
    fresh::prepare(
        &sim.client,
        prepared,
        CPU_REQUEST_MILLICORES,
        timeout,
        Duration::from_millis(250),
    )
    .await
}

/// A prediction through `url`, tried for up to 5 s: a Service applied after its pod
/// was ready reaches kube-proxy's (the kubelet's) next endpoint update, not at once.
async fn predict_soon(url: &str) -> Option<u16> {
    for _ in 0..20 {
        if let Some(status) = predict(url).await {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_namespaces_stand_side_by_side_each_on_its_own_node_port() {
    let _serial = SERIAL.lock().await;
    let sim = Sim::start(SimOptions {
        deploy: false,
        ..SimOptions::default()
    })
    .await;
    let a = fresh_objects("scaleproof-0-a", 30080);
    let b = fresh_objects("scaleproof-1-b", 30081);
    let (ready_a, ready_b) = tokio::join!(prepare(&sim, &a), prepare(&sim, &b));
    for (name, ready) in [("a", &ready_a), ("b", &ready_b)] {
        let report = ready
            .as_ref()
            .unwrap_or_else(|e| panic!("{name} prepares: {e}"));
        let idle = report.idle_cpu_millicores.expect("a CPU target");
        assert!(idle < 50, "{name}: idle at {idle}m, under the 50m target");
        eprintln!(
            "namespace {name} ready in {:.1} s",
            report.took.as_secs_f64()
        );
    }
    let url_a = sim.cluster.node_port_url(30080).expect("30080 listens");
    let url_b = sim.cluster.node_port_url(30081).expect("30081 listens");
    assert_eq!(predict(&url_a).await, Some(200), "a serves on 30080");
    assert_eq!(predict(&url_b).await, Some(200), "b serves on 30081");

    // A third on a held port: the Service is refused as kind's API server refuses it
    // (prepare retries that refusal while a namespace being deleted may still hold
    // the port; here nothing is being deleted, so it ends at its deadline).
    let c = fresh_objects("scaleproof-2-c", 30080);
    let refused = prepare_within(&sim, &c, Duration::from_secs(3))
        .await
        .expect_err("30080 is a's");
    let message = refused.to_string();
    assert!(
        message.contains(
            "Service \"iris-classifier-service\" is invalid: spec.ports[0].nodePort: \
             Invalid value: 30080: provided port is already allocated"
        ),
        "{message}"
    );

    // a deleted: its port refuses connections at once, b goes on serving, and c can
    // now take 30080.
    fresh::delete(&sim.client, &a.target)
        .await
        .expect("delete a");
    let mut closed = false;
    for _ in 0..40 {
        if predict(&url_a).await.is_none() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        closed,
        "30080 still served 10 s after its namespace was deleted"
    );
    assert_eq!(predict(&url_b).await, Some(200), "b unaffected");
    prepare(&sim, &c)
        .await
        .expect("c prepares on the freed 30080");
    assert_eq!(predict_soon(&url_a).await, Some(200), "c serves on 30080");

    fresh::delete(&sim.client, &a.target)
        .await
        .expect("deleting twice is fine");
    fresh::delete(&sim.client, &b.target)
        .await
        .expect("delete b");
    fresh::delete(&sim.client, &c.target)
        .await
        .expect("delete c");
    sim.stop().await;
}

/// iris-server with a start-up that goes on after the pod is ready, as a model
/// loading or a JIT warming does: a busy loop forked beside it for `seconds`, in the
/// pod's cgroup, ended by `timeout` whatever happens to the pod.
fn busy_after_start(seconds: u32) -> BTreeMap<String, LocalProgram> {
    let script = format!("timeout {seconds} sh -c 'while :; do :; done' & exec \"$0\" \"$@\"");
    let server = crate::support::iris_server().display().to_string();
    BTreeMap::from([(
        "iris-server".to_string(),
        LocalProgram {
            command: vec!["sh".into(), "-c".into(), script, server],
            workdir: None,
        },
    )])
}

/// The CI failure this guards: the FastAPI example's normal-load saw its HPA at 3
/// replicas and 132 % CPU with 2 req/s offered, because its fresh namespace's HPA
/// existed while the pod trained its model. The controller counts a sample whose
/// window ends one window after the Ready condition's `lastTransitionTime`
/// (`groupPods`, `pkg/controller/podautoscaler/replica_calculator.go`); with a 1 s
/// window (the fast preset) and a timestamp of one second's resolution, that window
/// can be all start-up. Here the start-up burns the CPU limit for 4 s after the pod
/// is ready, so an HPA present from the start scales out every time; one applied
/// once the pod is idle must recommend one replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_namespaces_hpa_does_not_judge_the_pods_start_up() {
    let _serial = SERIAL.lock().await;
    let sim = Sim::start(SimOptions {
        deploy: false,
        containers: busy_after_start(4),
        ..SimOptions::default()
    })
    .await;
    let ns = fresh_objects("scaleproof-0-warm-start", 30080);
    let report = prepare(&sim, &ns).await.expect("the namespace prepares");
    eprintln!(
        "prepared in {:.1} s, idle at {:?}m",
        report.took.as_secs_f64(),
        report.idle_cpu_millicores
    );
    let namespace = &ns.target.namespace;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(sim.client.clone(), namespace);
    let deployments: Api<Deployment> = Api::namespaced(sim.client.clone(), namespace);
    // Five of the fast preset's 1 s syncs: the HPA's first comes one period after it
    // appeared, and each must find one replica enough.
    let started = Instant::now();
    let mut synced_below_target = false;
    while started.elapsed() < Duration::from_secs(5) {
        let hpa = hpas
            .get(&ns.hpa.metadata.name.clone().unwrap_or_default())
            .await
            .expect("the HPA exists");
        let status = hpa.status.unwrap_or_default();
        let utilization = status
            .current_metrics
            .iter()
            .flatten()
            .filter_map(|m| m.resource.as_ref())
            .find_map(|r| r.current.average_utilization);
        assert!(
            status.desired_replicas <= 1,
            "the HPA wants {} replicas at {utilization:?} % CPU, {:.1} s after the namespace \
             was handed over: it judged the pod's start-up",
            status.desired_replicas,
            started.elapsed().as_secs_f64()
        );
        if utilization.is_some_and(|u| u < 50) {
            synced_below_target = true;
        }
        let replicas = deployments
            .get(&ns.target.deployment)
            .await
            .expect("the Deployment exists")
            .spec
            .and_then(|s| s.replicas);
        assert_eq!(replicas, Some(1), "the Deployment was scaled");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        synced_below_target,
        "the HPA never reported a CPU utilization below its 50 % target"
    );
    fresh::delete(&sim.client, &ns.target)
        .await
        .expect("delete the namespace");
    sim.stop().await;
}
