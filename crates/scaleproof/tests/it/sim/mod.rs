//! The local backend's simulated cluster, driven by the cluster code the gate runs:
//! `cluster::apply`, the rollout and metrics waits, and `gate::run_scenario` (reset,
//! observer, load, verdicts), against real iris-server pods under real CPU limits.
//!
//! [`Sim`] is the fixture: a started cluster with the repository's `k8s/` applied
//! (or not), a kube client on its API, and the stress config a scenario test reads.
//! Its `stop` checks that every pod process and cgroup is gone.

mod api;
mod faults;
mod fresh;
mod lifecycle;
mod memory;
mod scale_down;
mod scaling;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use scaleproof::backend::BackendKind;
use scaleproof::cluster::{self, HpaOverrides, KubeAccess, Prepared, metrics_server, rollout};
use scaleproof::gate::handover::{self, Handover};
use scaleproof::gate::{self, ScenarioContext};
use scaleproof::report::ScenarioReport;
use scaleproof_sim::{
    CgroupDriver, LocalProgram, SimCluster, SimSettings, TerminationOrder, Timing, TimingPreset,
};
use tokio_util::sync::CancellationToken;

/// Where the workload goes, as in the repository's stress.toml.
pub const NS: &str = "scaleproof";
/// The pods' selector.
pub const SELECTOR: &str = "app.kubernetes.io/name=iris-classifier";

/// These tests run real processes under real CPU limits on a 2-core machine and
/// check this process's cgroups afterwards: one simulated cluster at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How a test wants its cluster.
pub struct SimOptions {
    pub cgroups: CgroupDriver,
    pub timing: Timing,
    /// The pods' environment over `k8s/`'s (`IRIS_CPU_COST_MS=5` by default).
    pub env: BTreeMap<String, String>,
    /// Apply `k8s/` and wait for the rollout and the first PodMetrics.
    pub deploy: bool,
    /// Where the cluster's temp dir goes (default: the system's).
    pub dir_in: Option<PathBuf>,
    pub termination: TerminationOrder,
    /// What runs each container of `k8s/` (iris-server by default).
    pub containers: BTreeMap<String, LocalProgram>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            cgroups: CgroupDriver::detect(),
            timing: Timing::preset(TimingPreset::Fast),
            env: BTreeMap::from([("IRIS_CPU_COST_MS".into(), "5".into())]),
            deploy: true,
            dir_in: None,
            termination: TerminationOrder::Graceful,
            containers: crate::support::iris_containers(),
        }
    }
}

pub struct Sim {
    pub cluster: SimCluster,
    pub client: kube::Client,
    pub prepared: Prepared,
    pub dir: tempfile::TempDir,
}

impl Sim {
    pub async fn start(options: SimOptions) -> Sim {
        let dir = match &options.dir_in {
            Some(parent) => tempfile::tempdir_in(parent),
            None => tempfile::tempdir(),
        }
        .expect("temp dir");
        let cluster = SimCluster::start(SimSettings {
            containers: options.containers,
            cgroups: options.cgroups,
            log_dir: dir.path().join("logs"),
            timing: options.timing,
            termination: options.termination,
            seed: 1,
            pod_namespaces: true,
            faults: Vec::new(),
            disruptions: Vec::new(),
        })
        .await
        .expect("the simulated cluster starts");
        let client = cluster::connect(&KubeAccess::Url {
            url: cluster.api_url(),
        })
        .await
        .expect("a client for the simulated API");
        let mut prepared = Prepared::new(
            &crate::support::manifests(),
            NS,
            "iris-server:local",
            None,
            &HpaOverrides::default(),
        )
        .expect("k8s/ prepares");
        cluster::objects::set_env(&mut prepared.deployment, None, &options.env);
        let sim = Sim {
            cluster,
            client,
            prepared,
            dir,
        };
        if options.deploy {
            sim.deploy().await;
        }
        sim
    }

    /// What the local plan does after starting the cluster: apply, wait for the
    /// rollout, wait for PodMetrics.
    pub async fn deploy(&self) {
        cluster::apply::apply_workload(&self.client, &self.prepared)
            .await
            .expect("k8s/ applies");
        let target = &self.prepared.target;
        rollout::wait_for_rollout(
            &self.client,
            NS,
            &target.deployment,
            &target.selector,
            Duration::from_secs(60),
        )
        .await
        .expect("the Deployment rolls out");
        metrics_server::wait_for_pod_metrics(&self.client, NS, SELECTOR, Default::default())
            .await
            .expect("PodMetrics are served");
    }

    /// A scenario context as a scenario test builds it from the hand-over, for a
    /// config of the repository's `[target]` and `scenarios` (TOML).
    pub fn context(&self, scenarios: &str) -> ScenarioContext {
        let config = self.dir.path().join("stress.toml");
        std::fs::write(&config, config_text(scenarios)).expect("write the config");
        let handover = Handover {
            version: handover::VERSION,
            backend: BackendKind::Local,
            config,
            sets: Vec::new(),
            out_dir: self.dir.path().join("out"),
            profile: BackendKind::Local,
            target: handover::Target {
                access: KubeAccess::Url {
                    url: self.cluster.api_url(),
                },
                namespace: NS.into(),
                url: self
                    .cluster
                    .node_port_url(30080)
                    .expect("node port 30080 listens"),
                hpa_sync_period_s: self.cluster.timing().hpa_sync_period.as_secs_f64(),
            },
            fresh_namespace: false,
        };
        ScenarioContext::new(handover).expect("the config and manifests read")
    }

    /// Runs scenario `name` of `ctx` as its scenario test does.
    pub async fn run(&self, ctx: &ScenarioContext, name: &str) -> ScenarioReport {
        let scenario = ctx.config.scenario(name).expect("the scenario exists");
        gate::run_scenario(ctx, scenario, CancellationToken::new()).await
    }

    /// The pods of the workload.
    pub async fn pods(&self) -> Vec<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), NS);
        api.list(&ListParams::default().labels(SELECTOR))
            .await
            .expect("pods list")
            .items
    }

    /// The process ids of the workload's containers (`containerID: local://<pid>`).
    pub async fn pids(&self) -> Vec<u32> {
        self.pods().await.iter().filter_map(pid_of).collect()
    }

    /// Stops the cluster and checks that nothing it started outlives it.
    pub async fn stop(self) {
        let pids = self.pids().await;
        self.cluster.stop().await;
        for pid in pids {
            assert!(
                !crate::support::is_running(pid),
                "pod process {pid} survived stop"
            );
        }
        assert_eq!(crate::support::leftover_cgroups(), Vec::<PathBuf>::new());
    }
}

/// The pid of a pod's (first) container, from its container ID.
pub fn pid_of(pod: &Pod) -> Option<u32> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .container_id
        .as_ref()?
        .strip_prefix("local://")?
        .parse()
        .ok()
}

/// The repository's `[target]`, with `k8s/` by absolute path, and `scenarios`.
fn config_text(scenarios: &str) -> String {
    let k8s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s");
    format!(
        r#"[target]
namespace = "{NS}"
deployment = "iris-classifier"
hpa = "iris-classifier-hpa"
manifests = {k8s:?}

[target.request]
method = "POST"
path = "/predict"
body = '{{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}'
timeout_s = 10

{scenarios}
"#
    )
}
