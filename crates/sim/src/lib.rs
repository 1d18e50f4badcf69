//! A small simulated Kubernetes whose pods are real local processes under real CPU
//! and memory limits: scaleproof's local backend. A Kubernetes client (kube-rs, the
//! harness's cluster code, kubectl with a kubeconfig pointing at [`SimCluster::api_url`])
//! applies a Deployment, a Service and an HPA to it and watches the pods scale, with
//! no container runtime and no node.
//!
//! ```no_run
//! # async fn demo() -> Result<(), scaleproof_sim::LocalError> {
//! use std::collections::BTreeMap;
//! use scaleproof_sim::{CgroupDriver, LocalProgram, SimCluster, SimSettings, Timing, TimingPreset};
//!
//! let cluster = SimCluster::start(SimSettings {
//!     // The program that stands for the image of each container, by container name.
//!     containers: BTreeMap::from([(
//!         "iris-server".to_string(),
//!         LocalProgram::executable("target/release/iris-server"),
//!     )]),
//!     cgroups: CgroupDriver::detect(),
//!     log_dir: "target/sim-logs".into(),
//!     timing: Timing::preset(TimingPreset::Fast),
//!     termination: Default::default(),
//!     seed: 1,
//!     pod_namespaces: true,
//!     faults: Vec::new(),
//!     disruptions: Vec::new(),
//! })
//! .await?;
//! println!("API at {}, NodePort 30080 at {}", cluster.api_url(), cluster.node_port_url(30080)?);
//! // ... apply manifests through the API, send load to the NodePort ...
//! cluster.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! The parts, each doing what its Kubernetes counterpart does with the fields it is
//! given (and saying loudly which it ignores):
//! - [`api`]: the Kubernetes API the harness calls, on loopback;
//! - [`deployments`]: Deployment → pods; [`kubelet`]: pods → processes
//!   ([`replica`], [`probe`], [`cgroup`]), status, logs, termination in the kubelet's
//!   order; [`autoscaler`]: the HPA controller (the `scaleproof-hpa` port, queued as
//!   upstream); [`metrics`]: metrics-server (PodMetrics from the cgroups' CPU
//!   counters and memory working sets); [`nodeport`]: kube-proxy, a loopback listener per node port in front of
//!   its Service's ready pods;
//! - [`timing`]: the `fast` and `kind` presets; [`phases`]: the seed the loops'
//!   random phases are drawn from, and where they stood when a scenario's load began.
//!
//! Everything runs in the orchestrator's process for the whole run; the scenario
//! tests reach it through its API and NodePort URLs. Cleanup is structural: a
//! replica kills its process and removes its cgroup on drop, [`SimCluster::stop`]
//! stops every pod (and dropping the cluster aborts it all), and a run's registry
//! lets the next run sweep what a SIGKILLed harness left ([`sweep`]).

pub mod api;
mod autoscaler;
pub mod cgroup;
mod deployments;
pub mod disruptions;
mod events;
pub mod kubelet;
mod metrics;
pub mod nodeport;
pub mod phases;
pub mod podnet;
pub mod probe;
pub mod program;
pub mod qos;
pub mod replica;
pub mod sweep;
pub mod timing;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use api::faults::ApiFault;
pub use cgroup::{CgroupDriver, CpuLimitMode, MemoryMode};
pub use disruptions::{Disruption, DisruptionKind};
pub use kubelet::TerminationOrder;
pub use phases::Phases;
pub use podnet::PodNetwork;
pub use program::{CargoBin, LocalContainer, LocalProgram};
pub use timing::{Housekeeping, StartDelay, Timing, TimingPreset};

use api::resource::Resource;
use api::store::{Key, Store};
use api::{ApiServer, ApiState, Deny, LogFiles};
use kubelet::{Kubelet, KubeletConfig, Stats};
use nodeport::NodePorts;

/// Why the simulated cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot listen on loopback for the simulated {what}: {source}")]
    Listen {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the simulated cluster is made of.
#[derive(Debug, Clone)]
pub struct SimSettings {
    /// What each container runs, by the container's name: the program that stands
    /// for its image (`[backend.local.containers]`).
    pub containers: std::collections::BTreeMap<String, LocalProgram>,
    pub cgroups: CgroupDriver,
    /// Where container logs go (`<pod>.<container>.<run>.log`).
    pub log_dir: PathBuf,
    pub timing: Timing,
    /// How deleted pods stop: as a cluster does, unless a test breaks it on purpose.
    pub termination: TerminationOrder,
    /// Where the random parts of the timing come from (metrics-server's scrape
    /// phase, housekeeping waits, pod start delays): the same seed, the same phases.
    pub seed: u64,
    /// Give each pod a network namespace when this process may (root and `ip`);
    /// `false` keeps every pod on loopback with its host and port rewritten.
    pub pod_namespaces: bool,
    /// Errors the API answers the harness's requests with, from the start
    /// ([`api::faults`]).
    pub faults: Vec<ApiFault>,
    /// Disruptions played after each scenario's load starts ([`disruptions`]).
    pub disruptions: Vec<Disruption>,
}

/// The simulated cluster, running until [`SimCluster::stop`] (or dropped).
pub struct SimCluster {
    state: Arc<ApiState>,
    api: Option<ApiServer>,
    node_ports: NodePorts,
    cancel: CancellationToken,
    controllers: Vec<JoinHandle<()>>,
    kubelet: Option<JoinHandle<()>>,
    timing: Timing,
    seed: u64,
    phases: Arc<phases::PhaseLog>,
    network: PodNetwork,
    metrics_restarts: tokio::sync::mpsc::UnboundedSender<Duration>,
    cpu_limit: CpuLimitMode,
    _registry: Arc<sweep::Registry>,
}

impl SimCluster {
    /// Starts the API, the controllers, the kubelet and the NodePort. The cluster is
    /// empty but for its control plane (namespaces `default` and `kube-system`, the
    /// controller-manager's static pod, the metrics APIService).
    pub async fn start(settings: SimSettings) -> Result<Self, LocalError> {
        std::fs::create_dir_all(&settings.log_dir).map_err(|source| LocalError::Dir {
            path: settings.log_dir.clone(),
            source,
        })?;
        let (registry, killed) = sweep::Registry::create().map_err(|source| LocalError::Dir {
            path: std::env::temp_dir().join("scaleproof-runs"),
            source,
        })?;
        if killed > 0 {
            tracing::info!("killed {killed} process(es) left behind by an earlier run");
        }
        let cpu_limit = settings.cgroups.mode().clone();
        if let cgroup::MemoryMode::Unavailable { reason } = settings.cgroups.memory_mode() {
            // Once per cluster: every replica's memory then comes from its RSS.
            tracing::warn!(
                "no memory cgroup ({reason}): replica memory limits are NOT enforced and \
                 PodMetrics memory is the process RSS, not the working set metrics-server \
                 reports"
            );
        }
        if cpu_limit.is_capped() || settings.cgroups.memory_mode().is_available() {
            let swept = settings.cgroups.sweep_stale();
            if swept > 0 {
                tracing::info!("removed {swept} cgroup(s) left behind by an earlier run");
            }
        }
        let registry = Arc::new(registry);
        let store = Arc::new(Store::default());
        seed(&store, &settings.timing);
        let logs: LogFiles = Arc::default();
        let state = Arc::new(ApiState::new(Arc::clone(&store), Arc::clone(&logs)));
        for fault in settings.faults.iter().cloned() {
            state.faults.add(fault);
        }
        let (arrivals, load_starts) = tokio::sync::mpsc::unbounded_channel();
        let node_ports = NodePorts::reporting_to(arrivals);
        let stats: Stats = Arc::default();
        let (metrics_restarts, restarts) = tokio::sync::mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let epoch = SystemTime::now();
        let phase_log = Arc::new(phases::PhaseLog::default());
        let network = if settings.pod_namespaces {
            PodNetwork::detect()
        } else {
            PodNetwork::Loopback {
                reason: "pod network namespaces switched off for this cluster".into(),
            }
        };
        match &network {
            PodNetwork::Namespaces(_) => tracing::info!("pod network: {}", network.describe()),
            PodNetwork::Loopback { .. } => tracing::warn!("pod network: {}", network.describe()),
        }

        let kubelet = Kubelet::new(
            KubeletConfig {
                containers: settings.containers.clone(),
                cgroups: settings.cgroups.clone(),
                log_dir: settings.log_dir.clone(),
                timing: settings.timing,
                registry: Arc::clone(&registry),
                termination: settings.termination,
                seed: settings.seed,
                phases: Arc::clone(&phase_log),
                network: network.clone(),
            },
            Arc::clone(&store),
            logs,
            node_ports.clone(),
            Arc::clone(&stats),
        );
        let kubelet = tokio::spawn(kubelet.run(cancel.clone()));
        let controllers = vec![
            tokio::spawn(disruptions::run(
                settings.disruptions.clone(),
                disruptions::Targets {
                    state: Arc::clone(&state),
                    metrics_restarts: metrics_restarts.clone(),
                },
                load_starts,
                cancel.clone(),
            )),
            tokio::spawn(deployments::run(Arc::clone(&store), cancel.clone())),
            tokio::spawn(autoscaler::run(
                Arc::clone(&state),
                settings.timing.controller,
                epoch,
                Arc::clone(&phase_log),
                cancel.clone(),
            )),
            tokio::spawn(metrics::run(
                Arc::clone(&store),
                stats,
                metrics::Schedule {
                    resolution: settings.timing.metric_resolution,
                    // metrics-server started some time before anyone looked: its
                    // scrapes fall anywhere in a period relative to the run.
                    first_after: settings
                        .timing
                        .metric_resolution
                        .mul_f64(phases::Draws::new(settings.seed, phases::stream::SCRAPE).unit()),
                },
                Arc::clone(&phase_log),
                restarts,
                cancel.clone(),
            )),
        ];
        let api = ApiServer::start(Arc::clone(&state))
            .await
            .map_err(|source| LocalError::Listen {
                what: "API server",
                source,
            })?;
        tracing::info!(
            "simulated cluster: API {}, node ports on loopback as Services claim them, {}; \
             seed {} (the same phases again: --set backend.local.seed={})",
            api.url(),
            settings.timing,
            settings.seed,
            settings.seed
        );
        Ok(SimCluster {
            state,
            api: Some(api),
            node_ports,
            cancel,
            controllers,
            kubelet: Some(kubelet),
            timing: settings.timing,
            seed: settings.seed,
            phases: phase_log,
            network,
            cpu_limit,
            metrics_restarts,
            _registry: registry,
        })
    }

    /// Where the API is served (`http://127.0.0.1:<port>`).
    pub fn api_url(&self) -> String {
        self.api.as_ref().map(ApiServer::url).unwrap_or_default()
    }

    /// The node ports' listeners, to find a node port's URL from elsewhere (a
    /// handle: the listeners live as long as the cluster).
    pub fn node_ports(&self) -> NodePorts {
        self.node_ports.clone()
    }

    /// Where load for the Service on node port `node_port` goes: that port's
    /// listener on loopback, in front of the Service's ready pods (opened now if no
    /// Service has claimed the port yet, so the URL is known before the apply).
    pub fn node_port_url(&self, node_port: u16) -> Result<String, LocalError> {
        self.node_ports
            .url(node_port)
            .map_err(|source| LocalError::Listen {
                what: "NodePort",
                source,
            })
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// How pods get their network (namespaces, or loopback and why).
    pub fn pod_network(&self) -> &PodNetwork {
        &self.network
    }

    /// The seed this cluster's random phases were drawn from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Where the periodic loops stood at `at` (seconds until each next ran), as far
    /// as they have run since.
    pub fn phases_at(&self, at: SystemTime) -> Phases {
        self.phases.at(at)
    }

    pub fn cpu_limit(&self) -> &CpuLimitMode {
        &self.cpu_limit
    }

    /// Makes the API refuse a request with 403, as RBAC would (for tests of how the
    /// harness handles it).
    pub fn deny(&self, deny: Deny) {
        self.state
            .deny
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(deny);
    }

    /// Makes the API answer matching requests with an error ([`api::faults`]).
    pub fn inject(&self, fault: ApiFault) {
        self.state.faults.add(fault);
    }

    /// Ends every fault in play.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// How many requests a fault has answered so far.
    pub fn faults_played(&self) -> u64 {
        self.state.faults.played()
    }

    /// Ends every open watch stream, as an API server restart (or a proxy dropping
    /// long requests) does. With `compact`, the history of changes is gone too, so a
    /// client resuming from the last resourceVersion it saw gets `410 Gone` and must
    /// list again (kube-apiserver's watch cache after its window moved on).
    pub fn end_watches(&self, compact: bool) {
        self.state.end_watches(compact);
    }

    /// Watch streams ended by [`SimCluster::end_watches`] so far, and watches
    /// answered `410 Gone` (resumed from a resourceVersion no longer kept).
    pub fn watches_ended(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.state.watches_ended.load(Relaxed),
            self.state.watches_expired.load(Relaxed),
        )
    }

    /// Restarts metrics-server: its APIService becomes unavailable (the metrics API
    /// answers 503 as the aggregator does), every PodMetrics vanishes, and after
    /// `down` the new process serves again once it has scraped twice, so the gap
    /// is `down` plus one metric resolution.
    pub fn restart_metrics_server(&self, down: Duration) {
        // The scraper ends only with the cluster; a send after that has no one to stop.
        let _ = self.metrics_restarts.send(down);
    }

    /// Lifts every refusal [`SimCluster::deny`] set.
    pub fn allow_all(&self) {
        self.state
            .deny
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Stops the controllers, then every pod (SIGTERM, a short grace, SIGKILL; their
    /// cgroups go with them), then the API and the NodePort.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        for task in self.controllers.drain(..) {
            let _ = task.await;
        }
        if let Some(kubelet) = self.kubelet.take() {
            let _ = kubelet.await;
        }
        self.node_ports.stop().await;
        if let Some(api) = self.api.take() {
            api.stop().await;
        }
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        // Without `stop` (a panic, an early return): abort everything; the kubelet's
        // replicas are dropped with its task, and each kills its process and removes
        // its cgroup.
        self.cancel.cancel();
        for task in self.controllers.drain(..) {
            task.abort();
        }
        if let Some(kubelet) = self.kubelet.take() {
            kubelet.abort();
        }
    }
}

/// The objects a fresh cluster has before anyone applies anything.
fn seed(store: &Store, timing: &Timing) {
    for ns in ["default", "kube-system"] {
        store.put(
            &Key::new(Resource::Namespace, "", ns),
            json!({"metadata": {"labels": {"kubernetes.io/metadata.name": ns}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        );
    }
    // kubeadm's static pod, with its flags as kubeadm writes them (sorted, all in
    // `command`): the harness reads the HPA sync period back from it.
    let period = format!("{}s", timing.hpa_sync_period.as_secs_f64());
    let name = format!("kube-controller-manager-{}", kubelet::NODE);
    store.put(
        &Key::new(Resource::Pod, "kube-system", &name),
        json!({
            "metadata": {"labels": {"component": "kube-controller-manager", "tier": "control-plane"}},
            "spec": {"nodeName": kubelet::NODE, "containers": [{
                "name": "kube-controller-manager",
                "image": "registry.k8s.io/kube-controller-manager:simulated",
                "command": [
                    "kube-controller-manager",
                    format!("--horizontal-pod-autoscaler-cpu-initialization-period={}s", timing.controller.cpu_initialization_period.as_secs()),
                    format!("--horizontal-pod-autoscaler-downscale-stabilization={}s", timing.controller.downscale_stabilization_window.as_secs()),
                    format!("--horizontal-pod-autoscaler-initial-readiness-delay={}s", timing.controller.initial_readiness_delay.as_secs()),
                    format!("--horizontal-pod-autoscaler-sync-period={period}"),
                    format!("--horizontal-pod-autoscaler-tolerance={}", timing.controller.tolerance),
                ],
            }]},
            "status": {"phase": "Running"},
        }),
    );
    store.put(
        &Key::new(Resource::ApiService, "", metrics::API_SERVICE),
        metrics::api_service(false),
    );
}
