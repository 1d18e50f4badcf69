//! Carrying out a [`Plan`]: the setup and teardown `cargo xtask stress` and
//! `cargo xtask cluster up` call.
//!
//! The kind cluster is deleted whatever happens once it exists (unless
//! --keep-cluster): a [`ClusterGuard`] deletes it on drop, so an error, a panic or
//! Ctrl-C / SIGTERM (turned into an error by [`Interrupts`]) all end in teardown.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use scaleproof::cluster::{
    self, Prepared, Target, control_plane, diagnostics, metrics_server, rollout,
};
use tokio::signal::unix::{Signal, SignalKind, signal};
use xshell::{Shell, cmd};

use crate::plan::{ExternalCommand, KubeStep, Plan, Step, plan, shell_line};
use crate::preflight;
use crate::settings::{ClusterBackend, Settings};

/// The workload, deployed and ready for load.
pub struct Deployed {
    pub client: Client,
    /// The objects as applied (the reset re-applies `prepared.hpa` with overrides).
    pub prepared: Prepared,
    pub settings: Settings,
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
            ClusterBackend::Kind => Some(format!("http://127.0.0.1:{}", crate::plan::NODE_PORT)),
            ClusterBackend::Cluster => None,
        }
    }

    /// Keeps the kind cluster running after this value is gone (`cluster up`).
    pub fn keep(mut self) {
        self.guard.disarm();
    }

    /// Writes the diagnostics bundle into `dir` (one per failed scenario).
    pub async fn write_diagnostics_to(&self, dir: &Path) -> anyhow::Result<()> {
        write_diagnostics(&self.client, self.target(), dir)
            .await
            .map(|_| ())
    }

    /// Writes the diagnostics bundle into `settings.diagnostics_dir`.
    pub async fn write_diagnostics(&self) -> anyhow::Result<diagnostics::BundleReport> {
        write_diagnostics(&self.client, self.target(), &self.settings.diagnostics_dir).await
    }
}

/// Brings the workload up as [`plan`] describes: preflight, image, cluster,
/// metrics-server, apply, rollout, metrics. On failure after the workload was
/// applied, writes the diagnostics bundle; on any failure the kind cluster is
/// deleted (unless --keep-cluster) before this returns.
pub async fn setup(settings: &Settings) -> anyhow::Result<Deployed> {
    let plan = plan(settings)?;
    execute(&plan, settings).await
}

/// Tears down what [`setup`] created: the kind cluster, unless --keep-cluster.
pub async fn teardown(mut deployed: Deployed) -> anyhow::Result<()> {
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
pub async fn execute(plan: &Plan, settings: &Settings) -> anyhow::Result<Deployed> {
    let mut interrupts = Interrupts::new()?;
    let mut guard = ClusterGuard::disarmed(settings);
    let mut client: Option<Client> = None;
    let mut applied = false;
    let total = plan.setup.len();
    for (i, step) in plan.setup.iter().enumerate() {
        eprintln!("[{}/{total}] {}", i + 1, first_line(&step.to_string()));
        if let Step::Run(command) = step
            && command.creates_cluster
            && !settings.keep_cluster
        {
            guard.arm(); // from here on the cluster is ours to delete
        }
        let outcome = interrupts.race(run_step(step, settings, &mut client)).await;
        if let Err(error) = outcome {
            if applied && let Some(client) = &client {
                report_diagnostics(client, &plan.prepared.target, &settings.diagnostics_dir).await;
            }
            return Err(error.context(format!("setup step {} of {total} failed", i + 1)));
        }
        applied |= matches!(step, Step::Kube(KubeStep::Apply(_)));
    }
    let client = match client {
        Some(client) => client,
        None => connect(settings).await?,
    };
    Ok(Deployed {
        client,
        prepared: plan.prepared.clone(),
        settings: settings.clone(),
        guard,
    })
}

async fn run_step(
    step: &Step,
    settings: &Settings,
    client: &mut Option<Client>,
) -> anyhow::Result<()> {
    match step {
        Step::Preflight(checks) => {
            let report = preflight::run(checks, &settings.root);
            if report.passed() {
                eprint!("{report}");
                Ok(())
            } else {
                bail!("preflight failed, nothing was started:\n{report}")
            }
        }
        Step::Run(command) => run_command(command.clone(), &settings.root).await,
        Step::Kube(kube_step) => {
            let client = match client {
                Some(client) => client.clone(),
                None => {
                    let connected = connect(settings).await?;
                    *client = Some(connected.clone());
                    connected
                }
            };
            run_kube(kube_step, &client, settings).await
        }
    }
}

async fn run_kube(step: &KubeStep, client: &Client, settings: &Settings) -> anyhow::Result<()> {
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
async fn run_command(command: ExternalCommand, root: &Path) -> anyhow::Result<()> {
    let root = root.to_path_buf();
    let line = shell_line(&command.program, &command.args);
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let sh = Shell::new()?;
        sh.change_dir(&root);
        let (program, args) = (&command.program, &command.args);
        cmd!(sh, "{program} {args...}").run()?;
        Ok(())
    })
    .await
    .context("the command's thread failed")?
    .with_context(|| format!("`{line}` failed"))
}

/// A client for the settings' kubeconfig context.
pub async fn connect(settings: &Settings) -> anyhow::Result<Client> {
    let what = settings.context.as_deref().unwrap_or("the current context");
    let options = KubeConfigOptions {
        context: settings.context.clone(),
        ..KubeConfigOptions::default()
    };
    let kubeconfig =
        Kubeconfig::read().context("cannot read the kubeconfig ($KUBECONFIG or ~/.kube/config)")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .with_context(|| format!("kubeconfig has no usable {what}"))?;
    Client::try_from(config).with_context(|| format!("cannot build a client for {what}"))
}

/// Writes the diagnostics bundle, saying where.
pub async fn write_diagnostics(
    client: &Client,
    target: &Target,
    dir: &Path,
) -> anyhow::Result<diagnostics::BundleReport> {
    let report = diagnostics::write_bundle(client, target, dir).await?;
    eprintln!("diagnostics written to {}", dir.display());
    for (part, why) in report.failures() {
        eprintln!("  (could not collect {part}: {why})");
    }
    Ok(report)
}

async fn report_diagnostics(client: &Client, target: &Target, dir: &Path) {
    if let Err(e) = write_diagnostics(client, target, dir).await {
        eprintln!("warning: no diagnostics bundle: {e:#}");
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// Ctrl-C (SIGINT) and SIGTERM, turned into an error of whatever is running.
///
/// Listening replaces the default "die at once" of these signals, which would skip
/// every destructor and leave the kind cluster behind. The streams are created once,
/// so a signal arriving between two steps is not lost.
pub struct Interrupts {
    interrupt: Signal,
    terminate: Signal,
}

impl Interrupts {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Interrupts {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// `work`, or an error if a signal comes first (`work` is then dropped).
    pub async fn race<T>(
        &mut self,
        work: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        tokio::select! {
            result = work => result,
            _ = self.interrupt.recv() => bail!("interrupted (Ctrl-C)"),
            _ = self.terminate.recv() => bail!("terminated (SIGTERM)"),
        }
    }
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
        eprintln!(
            "tearing down: kind delete cluster --name {}",
            self.cluster_name
        );
        let status = Command::new("kind")
            .args(["delete", "cluster", "--name", &self.cluster_name])
            .current_dir(&self.root)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!(
                "warning: `kind delete cluster --name {}` exited with {s}; delete it by hand",
                self.cluster_name
            ),
            Err(e) => eprintln!(
                "warning: cannot run kind to delete cluster {}: {e}",
                self.cluster_name
            ),
        }
    }
}
