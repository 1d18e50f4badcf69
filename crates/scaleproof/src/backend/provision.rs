//! Carrying out a [`Plan`]: the setup and teardown of every backend.
//!
//! Each step is recorded in the [`SetupLog`] (one testcase of the `setup` suite in
//! `junit.xml`). A kind cluster is deleted whatever happens once it exists (unless
//! --keep-cluster): a [`ClusterGuard`] deletes it on drop, so an error, a panic or
//! Ctrl-C / SIGTERM (turned into an error by [`Interrupts`]) all end in teardown.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kube::Client;
use xshell::{Shell, cmd};

use super::plan::{ExternalCommand, KubeStep, Plan, Step, plan, shell_line};
use super::{BackendError, BackendKind, Interrupts, Settings, SetupLog, preflight};
use crate::cluster::{self, Prepared, Target, control_plane, diagnostics, metrics_server, rollout};
use crate::compile::cargo_executable;
use crate::local::{CgroupDriver, CpuLimitMode};

/// What setup produced: the workload deployed and ready for load (kind, cluster), or
/// the service built and the CPU limits known (local).
pub struct Deployed {
    /// A client of the cluster's API (kind and cluster).
    pub client: Option<Client>,
    /// The objects as applied (the reset re-applies `prepared.hpa` with overrides).
    pub prepared: Prepared,
    pub settings: Settings,
    /// The service executable (local).
    pub server_bin: Option<PathBuf>,
    /// How replica CPU is limited (local).
    pub cpu_limit: Option<CpuLimitMode>,
    guard: ClusterGuard,
}

impl Deployed {
    /// Names of the deployed objects.
    pub fn target(&self) -> &Target {
        &self.prepared.target
    }

    /// Where load goes: kind maps the Service's NodePort to loopback. `None` on
    /// `--backend cluster`, whose node addresses only the user knows.
    pub fn base_url(&self) -> Option<String> {
        match self.settings.backend {
            BackendKind::Kind => Some(format!("http://127.0.0.1:{}", super::plan::NODE_PORT)),
            BackendKind::Cluster | BackendKind::Local => None,
        }
    }

    /// Keeps the kind cluster running after this value is gone (`cluster up`).
    pub fn keep(mut self) {
        self.guard.disarm();
    }

    /// Writes the diagnostics bundle into `dir` (kind and cluster).
    pub async fn write_diagnostics_to(
        &self,
        dir: &Path,
    ) -> Result<Option<diagnostics::BundleReport>, BackendError> {
        let Some(client) = &self.client else {
            return Ok(None);
        };
        Ok(Some(write_diagnostics(client, self.target(), dir).await?))
    }
}

/// Brings the backend up as [`plan`] describes, recording each step in `log`. On
/// failure after the workload was applied, writes the diagnostics bundle; on any
/// failure the kind cluster is deleted (unless --keep-cluster) before this returns.
pub async fn setup(settings: &Settings, log: &mut SetupLog) -> Result<Deployed, BackendError> {
    let plan = plan(settings)?;
    execute(&plan, settings, log).await
}

/// Tears down what [`setup`] created: the kind cluster, unless --keep-cluster.
pub async fn teardown(mut deployed: Deployed) -> Result<(), BackendError> {
    deployed.guard.disarm();
    let plan = plan(&deployed.settings)?;
    for step in &plan.teardown {
        if let Step::Run(command) = step {
            run_command(command.clone(), &deployed.settings.root).await?;
        }
    }
    Ok(())
}

/// Executes `plan.setup`; see [`setup`].
pub async fn execute(
    plan: &Plan,
    settings: &Settings,
    log: &mut SetupLog,
) -> Result<Deployed, BackendError> {
    let mut interrupts = Interrupts::new()
        .map_err(|e| BackendError::Invalid(format!("cannot listen for Ctrl-C and SIGTERM: {e}")))?;
    let mut deployed = Deployed {
        client: None,
        prepared: plan.prepared.clone(),
        settings: settings.clone(),
        server_bin: None,
        cpu_limit: None,
        guard: ClusterGuard::disarmed(settings),
    };
    let mut applied = false;
    let total = plan.setup.len();
    for (i, step) in plan.setup.iter().enumerate() {
        let title = step.title();
        tracing::info!("[{}/{total}] {}", i + 1, first_line(&step.to_string()));
        if let Step::Run(command) = step
            && command.creates_cluster
            && !settings.keep_cluster
        {
            deployed.guard.arm(); // from here on the cluster is ours to delete
        }
        let started = Instant::now();
        let outcome = interrupts
            .race(run_step(step, settings, &mut deployed))
            .await;
        match outcome {
            Ok(()) => log.pass(&title, started),
            Err(error) => {
                log.fail(&title, started, &error);
                if applied && let Some(client) = &deployed.client {
                    report_diagnostics(client, &plan.prepared.target, &settings.diagnostics_dir)
                        .await;
                }
                return Err(BackendError::Step {
                    step: i + 1,
                    total,
                    what: title,
                    source: Box::new(error),
                });
            }
        }
        applied |= matches!(step, Step::Kube(KubeStep::Apply(_)));
    }
    if settings.backend.is_cluster() && deployed.client.is_none() {
        deployed.client = Some(cluster::connect(settings.context.as_deref()).await?);
    }
    Ok(deployed)
}

async fn run_step(
    step: &Step,
    settings: &Settings,
    deployed: &mut Deployed,
) -> Result<(), BackendError> {
    match step {
        Step::Preflight(checks) => {
            let report = preflight::run(checks, &settings.root);
            if report.passed() {
                tracing::info!("preflight:\n{report}");
                Ok(())
            } else {
                Err(BackendError::Preflight(report))
            }
        }
        Step::Run(command) => run_command(command.clone(), &settings.root).await,
        Step::Build { package, bin } => {
            let root = settings.root.clone();
            let (package, bin) = (*package, *bin);
            let built = tokio::task::spawn_blocking(move || {
                cargo_executable(
                    &root,
                    &["build", "--release", "-p", package, "--bin", bin],
                    bin,
                )
            })
            .await
            .map_err(|e| BackendError::Invalid(format!("the build thread failed: {e}")))?;
            let exe = built.map_err(|e| BackendError::Command {
                line: format!("cargo build --release -p {package} --bin {bin}"),
                reason: e.to_string(),
            })?;
            deployed.server_bin = Some(exe);
            Ok(())
        }
        Step::ProbeCpuLimits => {
            let mode = CgroupDriver::detect().mode().clone();
            if let CpuLimitMode::Uncapped { reason } = &mode {
                tracing::warn!(
                    "!!! CPU limits cannot be enforced here ({reason}). Replicas run UNCAPPED: \
                     the figures do not describe 200m pods. !!!"
                );
            }
            deployed.cpu_limit = Some(mode);
            Ok(())
        }
        Step::Kube(kube_step) => {
            let client = match &deployed.client {
                Some(client) => client.clone(),
                None => {
                    let connected = cluster::connect(settings.context.as_deref()).await?;
                    deployed.client = Some(connected.clone());
                    connected
                }
            };
            run_kube(kube_step, &client, settings).await
        }
    }
}

async fn run_kube(
    step: &KubeStep,
    client: &Client,
    settings: &Settings,
) -> Result<(), BackendError> {
    let timeout = settings.wait_timeout;
    match step {
        KubeStep::VerifyHpaSyncPeriod(period) => {
            control_plane::verify_hpa_sync_period(client, period).await?
        }
        KubeStep::ConfigureMetricsServer => {
            metrics_server::configure_for_kind(client).await?;
        }
        KubeStep::WaitRollout {
            namespace,
            deployment,
            selector,
        } => {
            rollout::wait_for_rollout(client, namespace, deployment, selector, timeout).await?;
        }
        KubeStep::Apply(prepared) => cluster::apply::apply_workload(client, prepared).await?,
        KubeStep::WaitPodMetrics(target) => {
            let wait = metrics_server::MetricsWait {
                timeout,
                ..metrics_server::MetricsWait::default()
            };
            metrics_server::wait_for_pod_metrics(client, &target.namespace, &target.selector, wait)
                .await?;
        }
    }
    Ok(())
}

/// Runs an external command on a blocking thread (so Ctrl-C can still be noticed).
async fn run_command(command: ExternalCommand, root: &Path) -> Result<(), BackendError> {
    let root = root.to_path_buf();
    let line = shell_line(&command.program, &command.args);
    let ran = tokio::task::spawn_blocking(move || -> Result<(), xshell::Error> {
        let sh = Shell::new()?;
        sh.change_dir(&root);
        let (program, args) = (&command.program, &command.args);
        cmd!(sh, "{program} {args...}").run()
    })
    .await;
    match ran {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(BackendError::Command {
            line,
            reason: e.to_string(),
        }),
        Err(e) => Err(BackendError::Command {
            line,
            reason: format!("its thread failed: {e}"),
        }),
    }
}

/// Writes the diagnostics bundle, saying where.
pub async fn write_diagnostics(
    client: &Client,
    target: &Target,
    dir: &Path,
) -> Result<diagnostics::BundleReport, BackendError> {
    let report = diagnostics::write_bundle(client, target, dir).await?;
    tracing::info!("diagnostics written to {}", dir.display());
    for (part, why) in report.failures() {
        tracing::warn!("could not collect {part}: {why}");
    }
    Ok(report)
}

async fn report_diagnostics(client: &Client, target: &Target, dir: &Path) {
    if let Err(e) = write_diagnostics(client, target, dir).await {
        tracing::warn!("no diagnostics bundle: {e}");
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// Deletes the kind cluster when dropped, while armed.
pub struct ClusterGuard {
    cluster_name: String,
    root: PathBuf,
    armed: bool,
}

impl ClusterGuard {
    fn disarmed(settings: &Settings) -> Self {
        ClusterGuard {
            cluster_name: settings.cluster_name.clone(),
            root: settings.root.clone(),
            armed: false,
        }
    }

    fn arm(&mut self) {
        self.armed = true;
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        tracing::info!(
            "tearing down: kind delete cluster --name {}",
            self.cluster_name
        );
        let status = Command::new("kind")
            .args(["delete", "cluster", "--name", &self.cluster_name])
            .current_dir(&self.root)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => tracing::error!(
                "`kind delete cluster --name {}` exited with {s}; delete it by hand",
                self.cluster_name
            ),
            Err(e) => tracing::error!(
                "cannot run kind to delete cluster {}: {e}",
                self.cluster_name
            ),
        }
    }
}
