//! Backends: where the workload runs, and the one lifecycle every backend follows.
//!
//! A run goes through the same phases whatever the backend:
//!
//! 1. **plan** ([`plan::plan`]): every setup step as data, printed by `--dry-run`;
//! 2. **prepare** ([`Backend::prepare`]): carry the plan out (build, probe limits,
//!    create the cluster, deploy, wait for metrics), each step recorded;
//! 3. per scenario, a namespace of its own prepared ahead ([`fresh`]; on a cluster
//!    the shared one, reset), then a **session** in the scenario test's process
//!    ([`crate::gate::session`]): targets for the load, observe, finish into a
//!    [`crate::timeline::Timeline`];
//! 4. **teardown** ([`Backend::teardown`]), guarded against panics and Ctrl-C: a kind
//!    cluster is deleted by a drop guard whatever happens.
//!
//! The prepared backend is handed to the scenario tests as a
//! [`Target`] inside the hand-over file; nothing else crosses the process boundary.

pub mod fresh;
pub mod image;
pub mod plan;
pub mod preflight;
pub mod provision;
pub mod settings;
pub mod versions;

mod interrupts;

use std::path::{Path, PathBuf};
use std::time::Instant;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use interrupts::Interrupts;
pub use provision::Deployed;
pub use settings::Settings;

use crate::cluster::KubeAccess;
use scaleproof_sim::{CpuLimitMode, MemoryMode};

/// How a scenario reaches the prepared backend: the same on every backend (the
/// local one is a simulated cluster).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// How to reach the Kubernetes API.
    pub access: KubeAccess,
    /// Where the workload is deployed.
    pub namespace: String,
    /// Where load goes (kind: the NodePort on loopback; local: the simulated NodePort).
    pub url: String,
    /// The cluster's HPA sync period (the reset keeps a deleted HPA away for two).
    pub hpa_sync_period_s: f64,
}

/// Which engine runs the workload. The one backend type of the harness: the command
/// line, the hand-over to the scenario tests and `report.json` all use it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// A simulated cluster on loopback, driven by the same Kubernetes API calls as
    /// kind: pods are local processes under cgroup CPU limits, the HPA controller is
    /// scaleproof's port of it. Needs no Docker; CPU limits need root (else: uncapped,
    /// said loudly).
    Local,
    /// A throwaway kind cluster with metrics-server (needs Docker, kind, kubectl).
    Kind,
    /// An existing cluster: the current kubeconfig context or --context (needs
    /// --image and --url).
    Cluster,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Kind => "kind",
            BackendKind::Cluster => "cluster",
        }
    }

    /// Whether the workload runs on Kubernetes (kind or an existing cluster).
    pub fn is_cluster(self) -> bool {
        !matches!(self, BackendKind::Local)
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why preparing or tearing down a backend failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A check before anything started failed; the report says what to fix.
    #[error("preflight failed, nothing was started:\n{0}")]
    Preflight(preflight::Report),
    /// An external command failed.
    #[error("`{line}` failed: {reason}")]
    Command { line: String, reason: String },
    /// A step against the Kubernetes API failed.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// Ctrl-C or SIGTERM arrived while the step ran.
    #[error("interrupted ({0})")]
    Interrupted(&'static str),
    /// The settings or the manifests cannot describe a run.
    #[error("{0}")]
    Invalid(String),
    /// Waiting for a process or a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A numbered step of a plan failed.
    #[error("setup step {step} of {total} ({what}) failed: {source}")]
    Step {
        step: usize,
        total: usize,
        what: String,
        #[source]
        source: Box<BackendError>,
    },
}

impl BackendError {
    /// Whether Ctrl-C or SIGTERM ended the work (at any depth).
    pub fn is_interrupt(&self) -> bool {
        match self {
            BackendError::Interrupted(_) => true,
            BackendError::Step { source, .. } => source.is_interrupt(),
            _ => false,
        }
    }
}

/// The setup steps of a run as they happen, for `report.json` and `junit.xml`.
#[derive(Debug, Default)]
pub struct SetupLog {
    pub steps: Vec<StepRecord>,
}

/// One setup step as it went; the report turns it into a `setup` testcase.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// What the step did, e.g. `kind create cluster`.
    pub name: String,
    /// Wall time of the step.
    pub duration_s: f64,
    /// Why it failed; `None` when it passed.
    pub error: Option<String>,
}

impl SetupLog {
    pub fn pass(&mut self, name: &str, since: Instant) {
        tracing::info!("setup: {name}: ok ({:.1} s)", since.elapsed().as_secs_f64());
        self.steps.push(StepRecord {
            name: name.into(),
            duration_s: since.elapsed().as_secs_f64(),
            error: None,
        });
    }

    pub fn fail(&mut self, name: &str, since: Instant, error: &dyn std::fmt::Display) {
        tracing::error!("setup: {name}: {error}");
        self.steps.push(StepRecord {
            name: name.into(),
            duration_s: since.elapsed().as_secs_f64(),
            error: Some(error.to_string()),
        });
    }

    pub fn failed(&self) -> bool {
        self.steps.iter().any(|s| s.error.is_some())
    }
}

/// A prepared backend: what the scenarios run against, until [`Backend::teardown`].
pub struct Backend {
    deployed: Deployed,
    /// Where load goes (kind and cluster).
    url: Option<String>,
}

impl Backend {
    /// Carries out the setup of `settings.backend`, recording every step in `log`.
    /// `None` when a step failed (the log says which and why); whatever was created
    /// by then is torn down again before this returns.
    pub async fn prepare(
        settings: &Settings,
        url: Option<String>,
        log: &mut SetupLog,
    ) -> Option<Backend> {
        let deployed = match provision::setup(settings, log).await {
            Ok(deployed) => deployed,
            Err(e) => {
                if !log.failed() {
                    // Failed before its first step (the plan itself): say so.
                    log.fail("plan the setup", Instant::now(), &e);
                }
                return None;
            }
        };
        // Each backend has its own default; never borrow another backend's address.
        // The local backend's is its simulated NodePort, whatever the config says.
        let url = match settings.backend {
            BackendKind::Local => deployed.base_url(),
            _ => url.or_else(|| deployed.base_url()),
        };
        match url {
            Some(url) => Some(Backend {
                deployed,
                url: Some(url),
            }),
            None => {
                log.fail(
                    "where to send load",
                    Instant::now(),
                    &"--backend cluster needs --url (or backend.cluster.url in the config): \
                      where the Service is reachable",
                );
                if let Err(e) = provision::teardown(deployed).await {
                    tracing::warn!("teardown failed: {e}");
                }
                None
            }
        }
    }

    pub fn kind(&self) -> BackendKind {
        self.deployed.settings.backend
    }

    /// What the scenario tests need to reach this backend.
    pub fn handover_target(&self) -> Target {
        Target {
            access: self.deployed.kube_access(),
            namespace: self.deployed.settings.namespace.clone(),
            url: self.url.clone().unwrap_or_default(),
            hpa_sync_period_s: self.deployed.settings.hpa_sync_period.as_secs_f64(),
        }
    }

    /// Local: the simulated control plane's timing.
    pub fn timing(&self) -> Option<scaleproof_sim::Timing> {
        self.deployed.sim.as_ref().map(|sim| *sim.timing())
    }

    /// Local: how pods get their network.
    pub fn pod_network(&self) -> Option<String> {
        self.deployed
            .sim
            .as_ref()
            .map(|sim| sim.pod_network().describe())
    }

    /// Local: the seed of the simulated control plane's random phases.
    pub fn seed(&self) -> Option<u64> {
        self.deployed.sim.as_ref().map(|sim| sim.seed())
    }

    /// Local: where the simulated control plane's loops stood at `at`.
    pub fn phases_at(&self, at: std::time::SystemTime) -> Option<scaleproof_sim::Phases> {
        self.deployed.sim.as_ref().map(|sim| sim.phases_at(at))
    }

    /// The compiled scenario tests (a setup step of every plan `stress` makes).
    pub fn scenario_tests(&self) -> Option<PathBuf> {
        self.deployed.scenario_tests.clone()
    }

    /// How replica CPU is limited, when the harness enforces it (local backend).
    pub fn cpu_limit(&self) -> Option<String> {
        self.deployed.cpu_limit.as_ref().map(describe_cpu_limit)
    }

    /// How replica memory is limited and measured, when the harness does it (local).
    pub fn memory_limit(&self) -> Option<String> {
        self.deployed
            .memory_limit
            .as_ref()
            .map(describe_memory_limit)
    }

    /// Writes what a person needs to understand a failed scenario into `dir` (the
    /// cluster's state and logs, the simulated one's included): of `target` (a
    /// scenario's own namespace), else of the namespace setup deployed into.
    pub async fn write_diagnostics(&self, dir: &Path, target: Option<&crate::cluster::Target>) {
        if let Err(e) = self.deployed.write_diagnostics_to(dir, target).await {
            tracing::warn!("diagnostics bundle incomplete: {e}");
        }
    }

    /// Tears down what [`Backend::prepare`] created (a kind cluster, unless
    /// --keep-cluster). The local backend's replicas live and die with each scenario.
    pub async fn teardown(self) {
        if let Err(e) = provision::teardown(self.deployed).await {
            tracing::warn!("teardown failed: {e}");
        }
    }
}

/// How replica memory is limited and measured, in the words `report.json` uses.
pub fn describe_memory_limit(mode: &MemoryMode) -> String {
    match mode {
        MemoryMode::V2 { parent } => format!(
            "cgroup v2 memory.max under {}; working set from memory.current - inactive_file",
            parent.display()
        ),
        MemoryMode::V1 { memory } => format!(
            "cgroup v1 memory.limit_in_bytes under {}; working set from memory.usage_in_bytes - total_inactive_file",
            memory.display()
        ),
        MemoryMode::Unavailable { reason } => {
            format!("UNLIMITED: {reason}; memory is the process RSS")
        }
    }
}

/// How replica CPU is limited, in the words `report.json` uses.
pub fn describe_cpu_limit(mode: &CpuLimitMode) -> String {
    match mode {
        CpuLimitMode::V2 { parent } => format!("cgroup v2 cpu.max under {}", parent.display()),
        CpuLimitMode::V1 { cpu, .. } => {
            format!("cgroup v1 cpu.cfs_quota_us under {}", cpu.display())
        }
        CpuLimitMode::Uncapped { reason } => format!("UNCAPPED: {reason}"),
    }
}
