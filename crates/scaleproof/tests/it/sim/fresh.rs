//! Fresh namespaces on the simulated cluster (`cluster::fresh`): two scenarios'
//! namespaces prepared at once from the same `k8s/`, each on its own node port and
//! serving only through it; a third on a port another holds refused with the API
//! server's words; a deleted namespace's port closed and free for the next.

use std::time::Duration;

use scaleproof::cluster::{self, HpaOverrides, Prepared, fresh};

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

/// The pod's CPU request in k8s/ (200m); the HPA's 50 % target makes 100m "idle".
const CPU_REQUEST_MILLICORES: u64 = 200;

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
        assert!(idle < 100, "{name}: idle at {idle}m, under the 100m target");
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
