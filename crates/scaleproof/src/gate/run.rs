//! The orchestrator: `scaleproof stress` from the config to the exit code.
//!
//! Order of events, and what happens when a step fails:
//! 1. read and validate the config (`--set` included): on error, exit 2 before
//!    anything starts, with `junit.xml` saying so;
//! 2. prepare the backend ([`Backend::prepare`], every step recorded): on error,
//!    reports with the failed setup step, exit 2;
//! 3. compile the scenario tests once and run the test binary once per scenario
//!    (`--exact <name>`), handing the run over in one file ([`Handover`]; with a
//!    namespace of its own per scenario, one per scenario: [`super::sequence`]);
//!    each test writes its report to `<out>/scenarios/<name>.json`;
//! 4. compare (the `[[compare]]` checks, `--baseline`), write the four artifacts,
//!    append to `$GITHUB_STEP_SUMMARY`, tear down; the caller prints the table and
//!    exits 0, 1 or 2.
//!
//! Ctrl-C stops after the running scenario has cleaned up; reports are still written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::handover::{self, Handover};
use super::lanes::{self, LanePlan, Lanes};
use super::sequence;
use super::{GateError, read_config, read_scenario_report, scenario_report_path};
use crate::backend::fresh::FreshNamespaces;
use crate::backend::preflight::{self, Check};
use crate::backend::settings::ClusterOptions;
use crate::backend::{Backend, BackendError, BackendKind, Interrupts, Settings, SetupLog, plan};
use crate::manifests::Manifests;
use crate::report::{
    self, LanesReport, LocalTimingReport, Report, RunMeta, SCHEMA_VERSION, ScenarioReport,
    SetupStep, VerdictReport, WorkloadReport, baseline,
};
use crate::scenario::{BaselineMargins, ConfigError, StressConfig};
use crate::verdict;

/// What `scaleproof stress` was asked to do. Relative paths are resolved against
/// `root` (the repository).
#[derive(Debug, Clone)]
pub struct StressOptions {
    /// `None`: kind when Docker and kind are usable, else local; refused under CI.
    pub backend: Option<BackendKind>,
    pub config: PathBuf,
    pub out: PathBuf,
    /// `--set SCENARIO.expect.KEY=VALUE` overrides.
    pub sets: Vec<String>,
    /// Only these scenarios (empty: all, in file order).
    pub scenarios: Vec<String>,
    /// A previous run's report.json; missing or incomparable is noted, not failed.
    pub baseline: Option<PathBuf>,
    /// `--baseline-margin`: overrides every fraction of `[baseline]`.
    pub baseline_margin: Option<f64>,
    /// Where load goes on kind and cluster (default: the config's, then kind's NodePort).
    pub url: Option<String>,
    /// All scenarios in setup's namespace with a reset before each (`--shared-namespace`).
    pub shared_namespace: bool,
    /// How many scenarios may run side by side (`--lanes`).
    pub lanes: Lanes,
    pub cluster: ClusterOptions,
    /// Print the plan and run nothing.
    pub dry_run: bool,
    /// The repository root.
    pub root: PathBuf,
    /// Whether this runs under CI (`CI=true`): no automatic backend choice there.
    pub ci: bool,
}

/// Why the config (with the command line) cannot describe a run.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading {path}: {message}")]
    Manifests { path: PathBuf, message: String },
    #[error("--scenario {name}: no such scenario in {config} (known: {known})")]
    UnknownScenario {
        name: String,
        config: String,
        known: String,
    },
    #[error("--baseline-margin must be a non-negative fraction, got {0}")]
    BaselineMargin(f64),
    #[error(
        "CI=true and no --backend: CI must say which engine it gates on \
         (--backend kind on GitHub runners, --backend local where Docker is missing)"
    )]
    NoBackendUnderCi,
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Runs the whole gate: returns the report it wrote (the caller prints the table and
/// exits with [`Report::exit_status`]).
pub async fn run(options: &StressOptions) -> Report {
    let out = options.root.join(&options.out);
    let mut run = RunState::new(options);
    // Listening replaces the default "die at once" of Ctrl-C and SIGTERM, so that
    // whatever happens, the reports below get written. Children (cargo, the scenario
    // tests) receive the same signal and wind down on their own.
    let stop = CancellationToken::new();
    let listening = Interrupts::new()
        .ok()
        .map(|i| i.cancel_on_signal(stop.clone()));

    let config = match load_config(options) {
        Ok(config) => config,
        Err(e) => {
            run.log.fail("read stress config", Instant::now(), &e);
            return run.finish(None, None, Facts::default());
        }
    };
    let backend_kind = match choose_backend(options) {
        Ok(kind) => kind,
        Err(e) => {
            run.log.fail("choose backend", Instant::now(), &e);
            return run.finish(None, Some(&config), Facts::default());
        }
    };
    let names: Vec<String> = if options.scenarios.is_empty() {
        config.scenarios.iter().map(|s| s.name.clone()).collect()
    } else {
        options.scenarios.clone()
    };

    let settings = match backend_settings(options, &config, backend_kind) {
        Ok(settings) => settings,
        Err(e) => {
            run.log.fail("resolve backend settings", Instant::now(), &e);
            return run.finish(Some(backend_kind), Some(&config), Facts::default());
        }
    };
    let url = options
        .url
        .clone()
        .or_else(|| config.backend.of(backend_kind).url.clone());
    let Some(backend) = Backend::prepare(&settings, url, &mut run.log).await else {
        return run.finish(Some(backend_kind), Some(&config), Facts::default());
    };
    let mut facts = Facts {
        workload: expected_workload(&config, backend_kind),
        hpa_sync_period_s: Some(settings.hpa_sync_period.as_secs_f64()),
        metric_resolution_s: Some(match backend.timing() {
            Some(t) => t.metric_resolution.as_secs_f64(),
            None => crate::cluster::metrics_server::kind_resolution().as_secs_f64(),
        }),
        cpu_limit: backend.cpu_limit(),
        memory_limit: backend.memory_limit(),
        pod_network: backend.pod_network(),
        local_timing: backend
            .timing()
            .map(|t| LocalTimingReport::new(&t, config.profile(backend_kind), backend.seed())),
        lanes: None,
    };

    let tests = match backend.scenario_tests() {
        Some(compiled) => Some(ScenarioTests {
            program: compiled,
            subcommand: None,
        }),
        None => match std::env::current_exe() {
            Ok(program) => Some(ScenarioTests {
                program,
                subcommand: Some("scenario-tests"),
            }),
            Err(e) => {
                run.log.fail(
                    "find this binary to run the scenario tests",
                    Instant::now(),
                    &e,
                );
                None
            }
        },
    };
    let handover = Handover {
        version: handover::VERSION,
        backend: backend_kind,
        config: options.root.join(&options.config),
        sets: options.sets.clone(),
        out_dir: out.clone(),
        profile: config.profile(backend_kind),
        target: backend.handover_target(),
        fresh_namespace: false,
    };
    let handover_path = match handover.write() {
        Ok(path) => Some(path),
        Err(e) => {
            run.log.fail("write the hand-over", Instant::now(), &e);
            None
        }
    };

    if let (Some(tests), Some(handover_path)) = (tests, handover_path)
        && !run.log.failed()
    {
        let manifests = Manifests::load(&config.manifests_dir());
        let fresh = match &manifests {
            _ if options.shared_namespace => {
                tracing::info!(
                    "--shared-namespace: the scenarios share namespace {}, reset before each",
                    settings.namespace
                );
                None
            }
            Ok(manifests) => FreshNamespaces::for_backend(&backend, manifests).await,
            Err(e) => {
                tracing::warn!("{e}: the scenarios share one namespace");
                None
            }
        };
        let plan = match (&fresh, &manifests) {
            (Some(fresh), Ok(manifests)) => {
                match lanes::candidates(&config, manifests, config.profile(backend_kind), &names) {
                    Ok(candidates) => {
                        lanes::plan(&candidates, &fresh.node_cpu().await, options.lanes)
                    }
                    Err(e) => LanePlan::serial(names.len(), format!("1 lane: {e}")),
                }
            }
            _ => LanePlan::serial(
                names.len(),
                "1 lane: the scenarios share one namespace, one after the other",
            ),
        };
        tracing::info!("lanes: {plan}");
        facts.lanes = Some(plan.report());
        let shared = sequence::Run {
            backend: &backend,
            tests: &tests,
            options,
            config: &config,
            out: &out,
            handover: &handover,
            handover_path: &handover_path,
            namespace: &settings.namespace,
        };
        let reports = sequence::run_scenarios(&shared, fresh.as_ref(), &names, &plan, &stop).await;
        // Each test wrote its report before the orchestrator knew its namespace,
        // lane, reset and phases: write it again as report.json has it, so
        // scenarios/<name>.json reads the same as its entry there.
        for report in &reports {
            if let Err(e) = super::write_scenario_report(&out, report) {
                tracing::warn!(
                    "cannot rewrite {}: {e}",
                    super::scenario_report_path(&out, &report.name).display()
                );
            }
        }
        run.scenarios.extend(reports);
    }

    backend.teardown().await;
    if let Some(listening) = listening {
        listening.abort();
    }
    run.finish(Some(backend_kind), Some(&config), facts)
}

/// What the prepared backend says about itself, for `report.json`'s `run`.
#[derive(Debug, Default)]
struct Facts {
    workload: Option<WorkloadReport>,
    hpa_sync_period_s: Option<f64>,
    metric_resolution_s: Option<f64>,
    lanes: Option<LanesReport>,
    cpu_limit: Option<String>,
    memory_limit: Option<String>,
    pod_network: Option<String>,
    local_timing: Option<LocalTimingReport>,
}

/// One pod as `kind` deploys it under `config`: the manifest's container with the
/// backend profile's env overrides (what `report.json` records as `run.workload`, and
/// what a baseline must match). `None` (and a warning) when the manifests do not say.
pub fn expected_workload(config: &StressConfig, kind: BackendKind) -> Option<WorkloadReport> {
    let workload = Manifests::load(&config.manifests_dir()).and_then(|m| m.workload());
    match workload {
        Ok(w) => {
            let mut env = w.env;
            env.extend(config.backend.of(config.profile(kind)).env_overrides());
            Some(WorkloadReport {
                cpu_request_millicores: w.cpu_request_millicores,
                cpu_limit_millicores: w.cpu_limit_millicores,
                env,
            })
        }
        Err(e) => {
            tracing::warn!("no pod resources to record or match a baseline against: {e}");
            None
        }
    }
}

/// Prints what a run would do, without doing any of it.
pub fn dry_run(options: &StressOptions) -> Result<String, InputError> {
    let config = load_config(options)?;
    let kind = choose_backend(options)?;
    let settings = backend_settings(options, &config, kind)?;
    let mut text = plan::plan(&settings)?.to_string();
    let names: Vec<&str> = if options.scenarios.is_empty() {
        config.scenarios.iter().map(|s| s.name.as_str()).collect()
    } else {
        options.scenarios.iter().map(String::as_str).collect()
    };
    let lanes = match options.lanes {
        _ if options.shared_namespace || kind == BackendKind::Cluster => {
            "one at a time in the shared namespace".to_string()
        }
        Lanes::Auto => "in as many lanes as the node's CPU holds (at most 2), planned \
                        once setup has read it"
            .to_string(),
        Lanes::Exactly(n) => format!("in {n} lane(s) where the node's CPU holds them"),
    };
    text.push_str(&format!(
        "scenarios (each: the scenario test binary with --exact <name>), {lanes}:\n"
    ));
    for (i, name) in names.iter().enumerate() {
        text.push_str(&format!("  {}. {name}\n", i + 1));
    }
    text.push_str(&format!(
        "reports: {}/{{junit.xml,report.json,summary.md,timeline.svg}}\n",
        options.out.display()
    ));
    Ok(text)
}

fn load_config(options: &StressOptions) -> Result<StressConfig, InputError> {
    let path = options.root.join(&options.config);
    let config = read_config(&path, &options.sets)?;
    for deprecation in &config.deprecations {
        tracing::warn!("{deprecation}");
    }
    let dir = config.manifests_dir();
    let manifests = Manifests::load(&dir).map_err(|e| InputError::Manifests {
        path: dir.clone(),
        message: e.to_string(),
    })?;
    config.check_against(&manifests)?;
    for name in &options.scenarios {
        if config.scenario(name).is_none() {
            let known: Vec<&str> = config.scenarios.iter().map(|s| s.name.as_str()).collect();
            return Err(InputError::UnknownScenario {
                name: name.clone(),
                config: path.display().to_string(),
                known: known.join(", "),
            });
        }
    }
    if let Some(m) = options.baseline_margin
        && !(m.is_finite() && m >= 0.0)
    {
        return Err(InputError::BaselineMargin(m));
    }
    Ok(config)
}

/// The backend asked for; else kind when it can work here, else local with a notice;
/// never silently under CI.
fn choose_backend(options: &StressOptions) -> Result<BackendKind, InputError> {
    if let Some(backend) = options.backend {
        return Ok(backend);
    }
    if options.ci {
        return Err(InputError::NoBackendUnderCi);
    }
    let checks = [
        Check::DockerDaemon,
        Check::Tool {
            name: "kind",
            version_args: &["version"],
        },
    ];
    let report = preflight::run(&checks, &options.root);
    if report.passed() {
        tracing::info!("backend: kind (Docker and kind are usable)");
        Ok(BackendKind::Kind)
    } else {
        tracing::warn!(
            "*** NOTICE: Docker or kind is not usable here, so the scenarios run on the LOCAL \
             backend (replicas as processes, scaleproof's port of the HPA). Pass --backend to \
             choose explicitly. ***\n{report}"
        );
        Ok(BackendKind::Local)
    }
}

/// The backend's settings: the command line's, with the config's namespace, manifests
/// and per-backend env.
fn backend_settings(
    options: &StressOptions,
    config: &StressConfig,
    kind: BackendKind,
) -> Result<Settings, BackendError> {
    let mut cluster = options.cluster.clone();
    cluster
        .namespace
        .get_or_insert_with(|| config.target.namespace.clone());
    let mut settings = Settings::resolve(kind, cluster, options.root.clone())?;
    if kind == BackendKind::Local {
        settings = settings.with_timing(config.local_timing());
        if let Some(seed) = config.backend.local.seed {
            settings.seed = seed;
        }
    }
    settings.log_dir = options.root.join(&options.out).join("logs");
    settings.manifests_dir = config.manifests_dir();
    settings.local_containers = config.local_containers();
    settings.faults = config.backend.local.faults.clone();
    settings.disruptions = config.backend.local.disruptions.clone();
    if !settings.faults.is_empty() || !settings.disruptions.is_empty() {
        tracing::warn!(
            "{} API fault(s) of [[backend.local.faults]] and {} disruption(s) of \
             [[backend.local.disruptions]] in play: this run rehearses a flaky cluster",
            settings.faults.len(),
            settings.disruptions.len()
        );
    }
    if kind == BackendKind::Kind
        && let Some(build) = &config.backend.kind.image
    {
        let base = config.path.parent().unwrap_or(Path::new("."));
        settings.image_build = build.resolved(base, &options.root, &config.target.deployment);
        // The git tag, under the service's own name (unless --image named it).
        if options.cluster.image.is_none()
            && let Some(tag) = &settings.image
        {
            let renamed =
                crate::backend::image::with_repository(tag, &settings.image_build.repository);
            settings.image = Some(renamed);
        }
    }
    settings.build_tests = crate::compile::has_scenario_tests_crate(&options.root);
    if !settings.build_tests {
        tracing::info!(
            "{} has no stress-tests crate: the scenarios run in this binary \
             (`scaleproof scenario-tests`), nothing is compiled",
            options.root.display()
        );
    }
    // A failed setup step leaves its evidence next to the other artifacts.
    settings.diagnostics_dir = options
        .root
        .join(&options.out)
        .join("diagnostics")
        .join("setup");
    if kind == BackendKind::Cluster
        && let Some(s) = config.backend.cluster.sync_period_s
    {
        settings.hpa_sync_period = Duration::from_secs_f64(s);
    }
    // The workload knobs of the profile: kind's when the local backend rehearses it.
    settings.env_overrides = config.backend.of(config.profile(kind)).env_overrides();
    Ok(settings)
}

/// The program that runs the scenario tests: the workspace's compiled test binary, or
/// this binary's hidden `scenario-tests` subcommand (the same harness).
pub(super) struct ScenarioTests {
    program: PathBuf,
    subcommand: Option<&'static str>,
}

/// Runs one scenario test and collects its report (or explains why there is none).
pub(super) async fn run_one(
    tests: &ScenarioTests,
    handover: &Path,
    options: &StressOptions,
    out: &Path,
    name: &str,
    stop: &CancellationToken,
) -> ScenarioReport {
    let started = Instant::now();
    let report_path = scenario_report_path(out, name);
    let _ = std::fs::remove_file(&report_path);
    // The test binary itself, not `cargo test`: cargo exits at once on Ctrl-C, while
    // the test winds its backend down and writes its report; waiting for the test is
    // waiting for the report.
    let mut cmd = tokio::process::Command::new(&tests.program);
    cmd.args(tests.subcommand)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(handover::VAR, handover)
        .current_dir(&options.root)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut interrupted = false;
    let status = match cmd.spawn() {
        Ok(mut child) => {
            let waited = tokio::select! {
                status = child.wait() => Some(status),
                _ = stop.cancelled() => None,
            };
            match waited {
                Some(status) => status.ok(),
                None => {
                    // The test got the same Ctrl-C and is cleaning up: let it finish.
                    interrupted = true;
                    tokio::time::timeout(Duration::from_secs(90), child.wait())
                        .await
                        .ok()
                        .and_then(Result::ok)
                }
            }
        }
        Err(e) => {
            return ScenarioReport::failed(
                name,
                started.elapsed().as_secs_f64(),
                (&GateError::Setup(format!(
                    "cannot start the scenario test {}: {e}",
                    tests.program.display()
                )))
                    .into(),
            );
        }
    };
    match read_scenario_report(&report_path) {
        Ok(mut report) => {
            if interrupted && report.error.is_none() {
                report.error = Some((&GateError::Interrupted("Ctrl-C".into())).into());
            }
            report
        }
        Err(_) if interrupted => ScenarioReport::failed(
            name,
            started.elapsed().as_secs_f64(),
            (&GateError::Interrupted("Ctrl-C before a result was written".into())).into(),
        ),
        Err(e) => ScenarioReport::failed(
            name,
            started.elapsed().as_secs_f64(),
            (&GateError::Setup(format!(
                "the scenario test exited ({}) without a result ({e}); its output above says why",
                status.map_or_else(|| "status unknown".into(), |s| s.to_string())
            )))
                .into(),
        ),
    }
}

/// What the run has gathered so far; [`RunState::finish`] turns it into reports.
struct RunState<'a> {
    options: &'a StressOptions,
    started_at: String,
    log: SetupLog,
    scenarios: Vec<ScenarioReport>,
}

impl<'a> RunState<'a> {
    fn new(options: &'a StressOptions) -> Self {
        RunState {
            options,
            started_at: now_rfc3339(),
            log: SetupLog::default(),
            scenarios: Vec::new(),
        }
    }

    /// Comparisons, baseline, the four artifacts and the job summary.
    fn finish(
        self,
        backend: Option<BackendKind>,
        config: Option<&StressConfig>,
        facts: Facts,
    ) -> Report {
        let options = self.options;
        let mut report = Report {
            schema_version: SCHEMA_VERSION,
            run: RunMeta {
                backend,
                git_sha: git_sha(&options.root),
                started_at: self.started_at.clone(),
                ended_at: now_rfc3339(),
                config: options.config.display().to_string(),
                tool_versions: tool_versions(backend),
                cpu_limit: facts.cpu_limit,
                memory_limit: facts.memory_limit,
                pod_network: facts.pod_network,
                local_timing: facts.local_timing,
                workload: facts.workload,
                hpa_sync_period_s: facts.hpa_sync_period_s,
                metric_resolution_s: facts.metric_resolution_s,
                lanes: facts.lanes,
            },
            setup: self.log.steps.into_iter().map(SetupStep::from).collect(),
            scenarios: self.scenarios,
            comparisons: Vec::new(),
            baseline: Vec::new(),
            against_baseline: None,
        };
        if let Some(config) = config {
            report.comparisons = comparisons(&report, config);
        }
        if let Some(path) = &options.baseline {
            let (margins, per_scenario) = baseline_margins(config, options.baseline_margin);
            let shown = path.display().to_string();
            let compared = match Report::read(&options.root.join(path)) {
                Ok(old) => baseline::compare(&report, &old, &shown, &margins, &per_scenario),
                Err(e) => baseline::unavailable(
                    &shown,
                    format!("no baseline: {e}"),
                    &report.run,
                    &margins,
                ),
            };
            if let Some(note) = &compared.comparison.note {
                tracing::warn!("baseline {shown}: {note}");
            }
            report.baseline = compared.verdicts;
            report.against_baseline = Some(compared.comparison);
        }
        let out = options.root.join(&options.out);
        match report.write_all(&out) {
            Ok(paths) => {
                for p in paths {
                    tracing::info!("wrote {}", p.display());
                }
            }
            Err(e) => tracing::error!("{e}"),
        }
        report::append_to_step_summary(&report::markdown::render(&report));
        report
    }
}

/// `[baseline]` and each scenario's own margins from `config` (the defaults without
/// one), with `fraction` (`--baseline-margin`) over every fraction, the scenarios'
/// own included.
pub fn baseline_margins(
    config: Option<&StressConfig>,
    fraction: Option<f64>,
) -> (BaselineMargins, BTreeMap<String, BaselineMargins>) {
    let overridden = |m: BaselineMargins| match fraction {
        Some(f) => m.with_fraction(f),
        None => m,
    };
    let margins = overridden(config.map(|c| c.baseline).unwrap_or_default());
    let per_scenario = config
        .iter()
        .flat_map(|c| &c.scenarios)
        .map(|s| (s.name.clone(), overridden(s.baseline)))
        .collect();
    (margins, per_scenario)
}

/// The `[[compare]]` checks whose scenarios both ran.
fn comparisons(report: &Report, config: &StressConfig) -> Vec<VerdictReport> {
    config
        .compare
        .iter()
        .filter(|c| {
            report.scenario(&c.numerator).is_some() && report.scenario(&c.denominator).is_some()
        })
        .map(|c| {
            let throughput = |name: &str| {
                report
                    .scenario(name)
                    .and_then(|s| s.load.as_ref())
                    .map(|l| l.throughput_per_s)
            };
            VerdictReport::from(&verdict::compare(
                c,
                throughput(&c.numerator),
                throughput(&c.denominator),
            ))
        })
        .collect()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}

fn git_sha(root: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .output()
        .ok()?;
    let sha = String::from_utf8(out.stdout).ok()?.trim().to_string();
    if sha.is_empty() {
        return None;
    }
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(root)
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    Some(if dirty { format!("{sha}-dirty") } else { sha })
}

fn tool_versions(backend: Option<BackendKind>) -> BTreeMap<String, String> {
    let mut versions = BTreeMap::from([(
        "scaleproof".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )]);
    let mut tools: Vec<(&str, &[&str])> = vec![("rustc", &["--version"])];
    if backend.is_some_and(BackendKind::is_cluster) {
        tools.extend([
            ("kubectl", &["version", "--client"][..]),
            ("kind", &["version"][..]),
        ]);
    }
    for (tool, args) in tools {
        if let Ok(out) = std::process::Command::new(tool).args(args).output()
            && let Some(line) = String::from_utf8_lossy(&out.stdout).lines().next()
        {
            versions.insert(tool.to_string(), line.trim().to_string());
        }
    }
    versions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ExitStatus;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn options(out: &Path) -> StressOptions {
        StressOptions {
            backend: Some(BackendKind::Local),
            config: root().join("stress.toml"),
            out: out.to_path_buf(),
            sets: Vec::new(),
            scenarios: Vec::new(),
            baseline: None,
            baseline_margin: None,
            url: None,
            shared_namespace: false,
            lanes: Lanes::Auto,
            cluster: ClusterOptions::default(),
            dry_run: false,
            root: root(),
            ci: false,
        }
    }

    #[test]
    fn under_ci_the_backend_must_be_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut o = options(dir.path());
        o.backend = None;
        o.ci = true;
        let err = choose_backend(&o).expect_err("CI without --backend");
        assert!(
            err.to_string().contains("CI=true and no --backend"),
            "{err}"
        );
        o.backend = Some(BackendKind::Local);
        assert_eq!(choose_backend(&o).expect("named"), BackendKind::Local);
    }

    #[tokio::test]
    async fn a_broken_config_exits_2_and_still_writes_the_reports() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("stress.toml");
        std::fs::write(
            &config,
            "[[scenario]]\nname = \"s\"\nrequests = 10\n[scenario.expect]\nmin_sucess_rate = 0.9\n",
        )
        .expect("write config");
        let out = dir.path().join("out");
        let mut o = options(&out);
        o.config = config;
        let report = run(&o).await;
        assert_eq!(report.exit_status(), ExitStatus::InfrastructureError);
        let junit = std::fs::read_to_string(out.join("junit.xml")).expect("junit.xml written");
        assert!(
            junit.contains("stress.toml:5:1: unknown field `min_sucess_rate`"),
            "{junit}"
        );
        let written = Report::read(&out.join("report.json")).expect("report.json written");
        assert_eq!(written.setup[0].name, "read stress config");
        assert_eq!(written.run.backend, None);
        assert!(written.scenarios.is_empty());
    }

    #[tokio::test]
    async fn an_unknown_scenario_name_is_an_input_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        let mut o = options(&out);
        o.scenarios = vec!["nope".into()];
        assert_eq!(run(&o).await.exit_status(), ExitStatus::InfrastructureError);
        let junit = std::fs::read_to_string(out.join("junit.xml")).expect("junit.xml written");
        assert!(
            junit.contains("--scenario nope: no such scenario"),
            "{junit}"
        );
    }
}
