//! Carrying out a [`Plan`]: the setup and teardown of every backend.
//!
//! Each step is recorded in the [`SetupLog`] (one testcase of the `setup` suite in
//! `junit.xml`). A kind cluster is deleted whatever happens once it exists (unless
//! --keep-cluster): a [`ClusterGuard`] deletes it on drop, so an error, a panic or
//! Ctrl-C / SIGTERM (turned into an error by [`Interrupts`]) all end in teardown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kube::Client;
use xshell::{Shell, cmd};

use super::plan::{ExternalCommand, KubeStep, Plan, SCENARIO_TESTS_BUILD, Step, plan, shell_line};
use super::{BackendError, BackendKind, Interrupts, Settings, SetupLog, preflight};
use crate::cluster::KubeAccess;
use crate::cluster::diagnostics::SetupFocus;
use crate::cluster::{self, Prepared, Target, control_plane, diagnostics, metrics_server, rollout};
use crate::compile::cargo_executable;
use scaleproof_sim::{CargoBin, CgroupDriver, CpuLimitMode, MemoryMode, SimCluster, SimSettings};

/// What setup produced: the workload deployed and ready for load (kind, cluster), or
/// the service built and the CPU limits known (local).
pub struct Deployed {
    /// A client of the cluster's API (kind and cluster).
    pub client: Option<Client>,
    /// The objects as applied (the reset re-applies `prepared.hpa` with overrides).
    pub prepared: Prepared,
    pub settings: Settings,
    /// The workspace binaries built for local containers (`cargo_bin`).
    pub built: BTreeMap<CargoBin, PathBuf>,
    /// How replica CPU is limited (local).
    pub cpu_limit: Option<CpuLimitMode>,
    /// How replica memory is limited and measured (local).
    pub memory_limit: Option<MemoryMode>,
    /// The compiled scenario tests (when the plan builds them).
    pub scenario_tests: Option<PathBuf>,
    /// Local: the simulated control plane.
    pub sim: Option<SimCluster>,
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
            BackendKind::Local => {
                let node_port = self.prepared.node_port().unwrap_or(super::plan::NODE_PORT);
                let sim = self.sim.as_ref()?;
                match sim.node_port_url(node_port) {
                    Ok(url) => Some(url),
                    Err(e) => {
                        tracing::error!("node port {node_port} of the simulated cluster: {e}");
                        None
                    }
                }
            }
            BackendKind::Cluster => None,
        }
    }

    /// How the scenario tests reach this backend's API.
    pub fn kube_access(&self) -> KubeAccess {
        match &self.sim {
            Some(sim) => KubeAccess::Url { url: sim.api_url() },
            None => self.settings.kube_access(),
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
        target: Option<&Target>,
    ) -> Result<Option<diagnostics::BundleReport>, BackendError> {
        let Some(client) = &self.client else {
            return Ok(None);
        };
        let target = target.unwrap_or(self.target());
        Ok(Some(write_diagnostics(client, target, dir).await?))
    }
}

/// Brings the backend up as [`plan`] describes, recording each step in `log`. On
/// failure after the workload was applied, writes the diagnostics bundle; on any
/// failure the kind cluster is deleted (unless --keep-cluster) before this returns.
pub async fn setup(settings: &Settings, log: &mut SetupLog) -> Result<Deployed, BackendError> {
    let plan = plan(settings)?;
    execute(&plan, settings, log).await
}

/// Tears down what [`setup`] created: the kind cluster, unless --keep-cluster; the
/// simulated control plane and its pods.
pub async fn teardown(mut deployed: Deployed) -> Result<(), BackendError> {
    deployed.guard.disarm();
    if let Some(sim) = deployed.sim.take() {
        sim.stop().await;
    }
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
    execute_with(plan, settings, log, None).await
}

/// [`execute`] with a client made already (tests give a mocked one).
pub async fn execute_with(
    plan: &Plan,
    settings: &Settings,
    log: &mut SetupLog,
    client: Option<Client>,
) -> Result<Deployed, BackendError> {
    let mut interrupts = Interrupts::new()
        .map_err(|e| BackendError::Invalid(format!("cannot listen for Ctrl-C and SIGTERM: {e}")))?;
    let mut deployed = Deployed {
        client,
        prepared: plan.prepared.clone(),
        settings: settings.clone(),
        built: BTreeMap::new(),
        cpu_limit: None,
        memory_limit: None,
        scenario_tests: None,
        sim: None,
        guard: ClusterGuard::disarmed(settings),
    };
    let mut cluster_exists = settings.backend == BackendKind::Cluster;
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
                // Evidence first: the guard in `deployed` deletes a kind cluster as
                // soon as this returns.
                let diagnosis = match (cluster_exists, setup_focus(step, plan)) {
                    (true, Some(focus)) if !error.is_interrupt() => {
                        setup_diagnostics(&mut deployed, settings, &focus).await
                    }
                    _ => None,
                };
                match &diagnosis {
                    Some(d) => log.fail(&title, started, &format!("{error}\n{d}")),
                    None => log.fail(&title, started, &error),
                }
                return Err(BackendError::Step {
                    step: i + 1,
                    total,
                    what: title,
                    source: Box::new(error),
                });
            }
        }
        cluster_exists |= matches!(step, Step::Run(c) if c.creates_cluster)
            || matches!(step, Step::StartLocalCluster(_));
    }
    if deployed.client.is_none() && settings.backend.is_cluster() {
        deployed.client = Some(cluster::connect(&settings.kube_access()).await?);
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
        Step::Run(command) => run_with_fallback(command, &settings.root).await,
        Step::BuildScenarioTests => {
            let root = settings.root.clone();
            let built = tokio::task::spawn_blocking(move || {
                cargo_executable(&root, &SCENARIO_TESTS_BUILD, "scenarios")
            })
            .await
            .map_err(|e| BackendError::Invalid(format!("the build thread failed: {e}")))?;
            let exe = built.map_err(|e| BackendError::Command {
                line: format!("cargo {}", SCENARIO_TESTS_BUILD.join(" ")),
                reason: e.to_string(),
            })?;
            deployed.scenario_tests = Some(exe);
            Ok(())
        }
        Step::Build(cargo) => {
            let root = settings.root.clone();
            let (package, bin) = (cargo.package.clone(), cargo.bin().to_string());
            let args = ["build", "--release", "-p", &package, "--bin", &bin].map(String::from);
            let line = format!("cargo {}", args.join(" "));
            let built = tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                cargo_executable(&root, &args, &bin)
            })
            .await
            .map_err(|e| BackendError::Invalid(format!("the build thread failed: {e}")))?;
            let exe = built.map_err(|e| BackendError::Command {
                line,
                reason: e.to_string(),
            })?;
            deployed.built.insert(cargo.clone(), exe);
            Ok(())
        }
        Step::StartLocalCluster(timing) => {
            let mut containers = BTreeMap::new();
            for (name, entry) in &settings.local_containers {
                let program = entry.program(&deployed.built).ok_or_else(|| {
                    BackendError::Invalid(format!(
                        "[backend.local.containers.{name}]: its cargo_bin was not built first"
                    ))
                })?;
                containers.insert(name.clone(), program);
            }
            let cgroups = CgroupDriver::detect();
            let sim = SimCluster::start(SimSettings {
                containers,
                cgroups,
                log_dir: settings.log_dir.clone(),
                timing: *timing,
                termination: Default::default(),
                seed: settings.seed,
                pod_namespaces: true,
                faults: settings.faults.clone(),
                disruptions: settings.disruptions.clone(),
            })
            .await
            .map_err(|e| BackendError::Invalid(e.to_string()))?;
            deployed.client =
                Some(cluster::connect(&KubeAccess::Url { url: sim.api_url() }).await?);
            deployed.sim = Some(sim);
            Ok(())
        }
        Step::ProbeCpuLimits => {
            let driver = CgroupDriver::detect();
            let mode = driver.mode().clone();
            if let CpuLimitMode::Uncapped { reason } = &mode {
                tracing::warn!(
                    "!!! CPU limits cannot be enforced here ({reason}). Replicas run UNCAPPED: \
                     the figures do not describe 200m pods. !!!"
                );
            }
            deployed.cpu_limit = Some(mode);
            deployed.memory_limit = Some(driver.memory_mode().clone());
            Ok(())
        }
        Step::Kube(kube_step) => {
            let client = match &deployed.client {
                Some(client) => client.clone(),
                None => {
                    let connected = cluster::connect(&deployed.kube_access()).await?;
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
            control_plane::verify_hpa_sync_period(client, period, Default::default()).await?
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

/// Runs `command`; when it fails and has a fallback, runs the fallback's commands in
/// order (the first error is kept in the message if they fail too).
pub async fn run_with_fallback(command: &ExternalCommand, root: &Path) -> Result<(), BackendError> {
    let first = match run_command(command.clone(), root).await {
        Ok(()) => return Ok(()),
        Err(e) if command.fallback.is_empty() => return Err(e),
        Err(e) => e,
    };
    tracing::warn!("{first}; trying the fallback");
    for other in &command.fallback {
        if let Err(e) = run_command(other.clone(), root).await {
            return Err(BackendError::Command {
                line: shell_line(&command.program, &command.args),
                reason: format!("{first}; and its fallback failed too: {e}"),
            });
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

/// What a failed step was waiting on, for the setup bundle; `None` for steps before
/// the cluster (preflight, builds), which leave nothing in a cluster to look at.
fn setup_focus(step: &Step, plan: &Plan) -> Option<SetupFocus> {
    match step {
        Step::Kube(KubeStep::WaitRollout {
            namespace,
            deployment,
            selector,
        }) => Some(SetupFocus::Deployment {
            namespace: namespace.clone(),
            name: deployment.clone(),
            selector: selector.clone(),
        }),
        Step::Kube(KubeStep::Apply(_)) => {
            let target = &plan.prepared.target;
            Some(SetupFocus::Deployment {
                namespace: target.namespace.clone(),
                name: target.deployment.clone(),
                selector: target.selector.clone(),
            })
        }
        Step::Kube(KubeStep::ConfigureMetricsServer | KubeStep::WaitPodMetrics(_)) => {
            Some(SetupFocus::MetricsPipeline)
        }
        Step::Kube(KubeStep::VerifyHpaSyncPeriod(_)) => Some(SetupFocus::ControlPlane),
        Step::Run(_) => Some(SetupFocus::Cluster),
        Step::Preflight(_)
        | Step::Build(_)
        | Step::ProbeCpuLimits
        | Step::BuildScenarioTests
        | Step::StartLocalCluster(_) => None,
    }
}

/// Writes the setup bundle (connecting first if no step has yet) and says where.
async fn setup_diagnostics(
    deployed: &mut Deployed,
    settings: &Settings,
    focus: &SetupFocus,
) -> Option<diagnostics::SetupDiagnosis> {
    let client = match &deployed.client {
        Some(client) => client.clone(),
        None => match cluster::connect(&deployed.kube_access()).await {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!("no diagnostics bundle: cannot reach the cluster: {e}");
                return None;
            }
        },
    };
    let dir = &settings.diagnostics_dir;
    match diagnostics::write_setup_bundle(&client, focus, &deployed.prepared.target, dir).await {
        Ok(diagnosis) => {
            tracing::error!(
                "setup failed; diagnostics written to {}\n{diagnosis}",
                dir.display()
            );
            for gap in &diagnosis.gaps {
                tracing::warn!("could not collect {gap}");
            }
            Some(diagnosis)
        }
        Err(e) => {
            tracing::warn!("no diagnostics bundle: {e}");
            None
        }
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A shell script at `dir/name` that appends its arguments to `dir/calls` and
    /// exits with `code`, printing `stderr` there.
    fn fake(dir: &Path, name: &str, code: i32, stderr: &str) -> String {
        let path = dir.join(name);
        let calls = dir.join("calls");
        let script = format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\necho '{stderr}' >&2\nexit {code}\n",
            calls.display()
        );
        std::fs::write(&path, script).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path.display().to_string()
    }

    fn command(program: &str, args: &[&str]) -> ExternalCommand {
        ExternalCommand {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            why: "test",
            creates_cluster: false,
            fallback: Vec::new(),
        }
    }

    /// kind's import fails under Docker's containerd image store
    /// (kubernetes-sigs/kind#3795); the single-platform archive gets the image in.
    #[tokio::test]
    async fn a_failed_kind_load_falls_back_to_an_image_archive() {
        let dir = tempfile::tempdir().expect("temp dir");
        let kind_fails = fake(
            dir.path(),
            "kind-load",
            1,
            "ctr: content digest sha256:9f2c: not found",
        );
        let docker = fake(dir.path(), "docker", 0, "");
        let kind = fake(dir.path(), "kind", 0, "");
        let mut load = command(&kind_fails, &["load", "docker-image", "iris-server:abc"]);
        load.fallback = vec![
            command(
                &docker,
                &["image", "save", "-o", "x.tar", "iris-server:abc"],
            ),
            command(&kind, &["load", "image-archive", "x.tar"]),
        ];
        run_with_fallback(&load, dir.path())
            .await
            .expect("the fallback loads the image");
        let calls = std::fs::read_to_string(dir.path().join("calls")).expect("calls");
        assert_eq!(
            calls.lines().collect::<Vec<_>>(),
            [
                "kind-load load docker-image iris-server:abc",
                "docker image save -o x.tar iris-server:abc",
                "kind load image-archive x.tar",
            ]
        );

        // A failing fallback reports both failures.
        let broken = fake(dir.path(), "broken", 3, "no space left on device");
        load.fallback = vec![command(&broken, &["image", "save"])];
        let err = run_with_fallback(&load, dir.path())
            .await
            .expect_err("both fail")
            .to_string();
        assert!(err.contains("kind-load load docker-image"), "{err}");
        assert!(err.contains("its fallback failed too"), "{err}");
    }
}
