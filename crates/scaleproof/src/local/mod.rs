//! The local backend: the manifests in `k8s/` run as local replicas under real CPU
//! limits, scaled by the port of the HPA controller ([`crate::hpa`]).
//!
//! For machines without Docker or a cluster. Everything the replicas need comes from
//! the same manifests the kind backend applies (command line, env, CPU request and
//! limit, readiness probe, the HPA), so there is no second configuration to keep in
//! sync. What differs from a cluster is listed in ARCHITECTURE.md.

pub mod cgroup;
mod controller;
pub mod probe;
pub mod replica;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::manifests::{HpaOverrides, Manifests};
use crate::timeline::Timeline;
use scaleproof_hpa::{Autoscaler, ControllerOptions, HpaSpec};
use scaleproof_load::{Endpoint, Targets};

pub use cgroup::{CgroupDriver, CpuLimitMode};
pub use controller::ReplicaStatus;

use controller::{Controller, ControllerConfig};
use probe::{ProbeSpec, Prober};
use replica::{Replica, ReplicaTemplate};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("k8s/: {0}")]
    Manifest(#[from] crate::manifests::ManifestError),
    #[error("the HPA cannot be run locally: {0}")]
    Hpa(String),
    #[error("cannot form the endpoint set of the replicas: {0}")]
    Targets(String),
    #[error("cannot start replica {name}: {source}")]
    Start {
        name: String,
        #[source]
        source: replica::ReplicaError,
    },
    #[error(
        "replica {name} did not become ready within {timeout:?} (probe {path}); \
         see its log{log}"
    )]
    NotReady {
        name: String,
        timeout: Duration,
        path: String,
        log: String,
    },
    #[error("replica {name} exited during start-up ({status}); see its log{log}")]
    ExitedAtStart {
        name: String,
        status: String,
        log: String,
    },
}

/// Everything the local backend needs to run a scenario.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// The service executable (`target/release/iris-server`, built by xtask).
    pub program: PathBuf,
    pub manifests: Manifests,
    /// Env vars set on top of the container's (e.g. the cost knob of a scenario).
    pub env_overrides: BTreeMap<String, String>,
    pub hpa_overrides: HpaOverrides,
    /// How often CPU usage is sampled (metrics-server's `--metric-resolution`).
    pub metric_resolution: Duration,
    /// Controller flags, the sync period (how often the HPA reconciles) among them;
    /// [`LocalSettings::new`] uses short periods suited to a scenario of a minute or two.
    pub controller: ControllerOptions,
    /// How CPU limits are enforced ([`CgroupDriver::detect`] by default).
    pub cgroups: CgroupDriver,
    /// Where replica logs go (`replica-N.log`).
    pub log_dir: Option<PathBuf>,
    /// How long the first replicas may take to become ready.
    pub startup_timeout: Duration,
}

impl LocalSettings {
    /// Local defaults: metrics every second, an HPA sync every second, CPU limits by
    /// cgroup where the machine allows it.
    pub fn new(program: PathBuf, manifests: Manifests) -> Self {
        LocalSettings {
            program,
            manifests,
            env_overrides: BTreeMap::new(),
            hpa_overrides: HpaOverrides::default(),
            metric_resolution: Duration::from_secs(1),
            controller: ControllerOptions::local_fast(),
            cgroups: CgroupDriver::detect(),
            log_dir: None,
            startup_timeout: Duration::from_secs(20),
        }
    }
}

/// The scaling timeline and what the run said about its own fidelity.
#[derive(Debug, Clone)]
pub struct LocalRun {
    pub timeline: Timeline,
    pub cpu_limit: CpuLimitMode,
}

/// Replicas running under the local HPA controller. Stop it with
/// [`LocalCluster::stop`]; dropping it also stops every replica (without waiting for
/// their drain), so a panicking test leaves nothing behind.
pub struct LocalCluster {
    targets: Targets,
    cancel: CancellationToken,
    task: Option<JoinHandle<Timeline>>,
    status: Arc<Mutex<Vec<ReplicaStatus>>>,
    epoch: Instant,
    cpu_limit: CpuLimitMode,
}

impl LocalCluster {
    /// Starts `minReplicas` replicas, waits until they are ready, and starts the
    /// controller loop. The timeline's clock starts when this returns.
    pub async fn start(settings: LocalSettings) -> Result<Self, LocalError> {
        let workload = settings.manifests.workload()?;
        let hpa = settings.hpa_overrides.apply_to(&settings.manifests.hpa)?;
        let spec = HpaSpec::try_from(&hpa).map_err(|e| LocalError::Hpa(e.to_string()))?;
        let cpu_target_pct = spec.cpu_utilization_target().unwrap_or_default();
        let min_replicas = spec.min_replicas.max(1);

        let cpu_limit = settings.cgroups.mode().clone();
        match &cpu_limit {
            CpuLimitMode::Uncapped { reason } => tracing::warn!(
                "!!! CPU LIMITS ARE NOT ENFORCED: {reason}. Replicas run uncapped, so the \
                 figures do not describe {}m pods. Run as root on a machine with a writable \
                 cgroup cpu controller for faithful results. !!!",
                workload.cpu_limit_millicores
            ),
            mode => {
                let swept = settings.cgroups.sweep_stale();
                if swept > 0 {
                    tracing::info!("removed {swept} cgroup(s) left behind by an earlier run");
                }
                tracing::info!(
                    "replicas are capped at {}m CPU ({mode:?})",
                    workload.cpu_limit_millicores
                );
            }
        }

        let mut env = workload.env.clone();
        env.extend(settings.env_overrides.clone());
        let template = ReplicaTemplate {
            program: settings.program.clone(),
            args: workload.container.args.clone().unwrap_or_default(),
            env,
            cpu_limit_millicores: workload.cpu_limit_millicores,
            readiness_path: workload.readiness_path.clone(),
            log_dir: settings.log_dir.clone(),
        };
        let readiness = workload.container.readiness_probe.as_ref();
        let probe = ProbeSpec {
            path: workload.readiness_path.clone(),
            period: Duration::from_secs(workload.readiness_period_s),
            timeout: Duration::from_secs(
                readiness
                    .and_then(|p| p.timeout_seconds)
                    .unwrap_or(1)
                    .max(1) as u64,
            ),
            failure_threshold: readiness
                .and_then(|p| p.failure_threshold)
                .unwrap_or(3)
                .max(1) as u32,
        };
        let grace_s = settings
            .manifests
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(1) as u64;

        // Start the first replicas and wait for them, so load never meets an empty set.
        let mut started = Vec::new();
        for index in 1..=min_replicas {
            let name = format!("replica-{index}");
            let replica =
                Replica::spawn(&template, &name, &settings.cgroups).map_err(|source| {
                    LocalError::Start {
                        name: name.clone(),
                        source,
                    }
                })?;
            let prober = Prober::start(replica.addr, probe.clone());
            started.push((replica, prober));
        }
        let deadline = Instant::now() + settings.startup_timeout;
        for (replica, prober) in &mut started {
            let log = settings
                .log_dir
                .as_ref()
                .map(|d| format!(" {}", d.join(format!("{}.log", replica.name)).display()))
                .unwrap_or_default();
            loop {
                if prober.is_ready() {
                    replica.ready = true;
                    replica.ready_since = Some(Instant::now());
                    break;
                }
                if let Some(status) = replica.exit_status() {
                    return Err(LocalError::ExitedAtStart {
                        name: replica.name.clone(),
                        status: status.to_string(),
                        log,
                    });
                }
                if Instant::now() >= deadline {
                    return Err(LocalError::NotReady {
                        name: replica.name.clone(),
                        timeout: settings.startup_timeout,
                        path: probe.path.clone(),
                        log,
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let endpoints = started
            .iter()
            .filter_map(|(r, _)| Endpoint::parse(&r.base_url()).ok())
            .collect();
        let targets = Targets::new(endpoints).map_err(|e| LocalError::Targets(e.to_string()))?;

        let epoch = Instant::now();
        let status = Arc::new(Mutex::new(Vec::new()));
        let config = ControllerConfig {
            template,
            probe,
            cgroups: settings.cgroups.clone(),
            cpu_request_millicores: workload.cpu_request_millicores,
            cpu_target_pct,
            metric_resolution: settings.metric_resolution,
            sync_period: settings.controller.sync_period,
            termination_grace: Duration::from_secs(grace_s),
        };
        let autoscaler = Autoscaler::new(spec, settings.controller);
        let controller = Controller::new(
            config,
            autoscaler,
            targets.clone(),
            started,
            min_replicas,
            epoch,
            Arc::clone(&status),
        );
        let cancel = CancellationToken::new();
        let task = tokio::spawn(controller.run(cancel.clone()));
        Ok(LocalCluster {
            targets,
            cancel,
            task: Some(task),
            status,
            epoch,
            cpu_limit,
        })
    }

    /// The endpoint set the load engine sends to; it follows the ready replicas.
    pub fn targets(&self) -> Targets {
        self.targets.clone()
    }

    /// The replicas as the controller saw them at its last tick.
    pub fn replicas(&self) -> Vec<ReplicaStatus> {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn cpu_limit(&self) -> &CpuLimitMode {
        &self.cpu_limit
    }

    /// Stops the controller and every replica (each drains first), and returns the
    /// timeline with times relative to `zero` (usually when the load started).
    pub async fn stop(mut self, zero: Instant) -> LocalRun {
        self.cancel.cancel();
        let mut timeline = match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| {
                // The controller task panicked or was aborted; its replicas were
                // dropped (and so stopped) with it. Say so rather than hide it.
                tracing::error!("the local controller ended abnormally: {e}");
                Timeline::default()
            }),
            None => Timeline::default(),
        };
        let shift = if zero >= self.epoch {
            -(zero - self.epoch).as_secs_f64()
        } else {
            (self.epoch - zero).as_secs_f64()
        };
        for sample in &mut timeline.samples {
            sample.t_s += shift;
        }
        for event in &mut timeline.events {
            event.t_s += shift;
        }
        LocalRun {
            timeline,
            cpu_limit: self.cpu_limit.clone(),
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // Without `stop` (a panic, an early return): abort the loop, which drops every
        // replica, and each replica kills its process and removes its cgroup.
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
