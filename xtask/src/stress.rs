//! `cargo xtask stress`: set a backend up, run every scenario of `stress.toml` as an
//! integration test, judge, report, tear down. See `cargo xtask stress --help`.
//!
//! Order of events, and what happens when a step fails:
//! 1. read and validate the config (`--set` included): on error, exit 2 before
//!    anything starts, with `junit.xml` saying so;
//! 2. set the backend up (local: build the service, probe CPU limits; kind/cluster:
//!    [`crate::run::setup`]): on error, reports with a failed setup step, exit 2;
//! 3. compile the scenario tests once (`cargo test -p stress-tests --no-run`) and run
//!    each scenario's test binary with `--ignored --exact <test>`,
//!    with the run handed over in `SCALEPROOF_*` variables; each test writes its
//!    report to `<out>/scenarios/<name>.json`;
//! 4. compare (scaling gain, `--baseline`), write the four artifacts, print the
//!    table, append to `$GITHUB_STEP_SUMMARY`, tear down, exit 0, 1 or 2.
//!
//! Ctrl-C stops after the running scenario has cleaned up; reports are still written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use scaleproof::gate::{self, BackendKind, vars};
use scaleproof::local::{CgroupDriver, CpuLimitMode};
use scaleproof::manifests::Manifests;
use scaleproof::report::{
    ExitStatus, Report, RunMeta, SCHEMA_VERSION, ScenarioReport, SetupStep, baseline, table,
};
use scaleproof::scenario::StressConfig;
use scaleproof::verdict::{self, Outcome, ReplicaBounds};

use crate::preflight::Check;
use crate::run::{Deployed, Interrupts};
use crate::settings::{ClusterBackend, ClusterOptions, Settings};

/// Which backend runs the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Replicas as local processes under cgroup CPU limits, scaled by scaleproof's port
    /// of the HPA controller. Needs no Docker; CPU limits need root (else: uncapped,
    /// said loudly).
    Local,
    /// A throwaway kind cluster with metrics-server (needs Docker, kind, kubectl).
    Kind,
    /// An existing cluster: the current kubeconfig context or --context (needs --image
    /// and --url).
    Cluster,
}

impl Backend {
    fn kind(self) -> BackendKind {
        match self {
            Backend::Local => BackendKind::Local,
            Backend::Kind => BackendKind::Kind,
            Backend::Cluster => BackendKind::Cluster,
        }
    }
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
Exit codes:
  0  every expectation held
  1  an expectation failed (see junit.xml, summary.md)
  2  setup or infrastructure failed, or the config is invalid

Artifacts (in --out): junit.xml, report.json (docs/report-schema.md), summary.md,
timeline.svg, logs/ (local replicas), diagnostics/ (cluster state on failure).

Examples:
  cargo xtask stress                                   # kind if Docker works, else local
  cargo xtask stress --backend local --scenario scale-up-1000
  cargo xtask stress --backend kind --dry-run          # print every command, run nothing
  cargo xtask stress --set scale-up-1000.expect.max_p95_ms=250
  cargo xtask stress --baseline main-run/report.json --baseline-margin 0.15")]
pub struct StressArgs {
    /// Where the workload runs. Without it: kind when Docker and kind are usable, else
    /// local (with a notice). With CI=true it is required: CI never falls back silently.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// The scenarios and their expectations.
    #[arg(long, default_value = "stress.toml")]
    pub config: PathBuf,
    /// Directory for the artifacts.
    #[arg(long, default_value = "target/scaleproof")]
    pub out: PathBuf,
    /// Override an expectation: SCENARIO.expect.KEY=VALUE (VALUE in TOML syntax).
    /// Repeatable.
    #[arg(long = "set", value_name = "SCENARIO.expect.KEY=VALUE")]
    pub sets: Vec<String>,
    /// Run only these scenarios (repeatable; default: all, in file order).
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// A previous run's report.json: fail when p95, throughput or the time to the first
    /// scale-up regressed beyond --baseline-margin.
    #[arg(long, value_name = "REPORT_JSON")]
    pub baseline: Option<PathBuf>,
    /// Allowed regression against --baseline, as a fraction.
    #[arg(long, default_value_t = baseline::DEFAULT_MARGIN)]
    pub baseline_margin: f64,
    /// Where load goes (default: backend.<backend>.url of the config; on kind, the
    /// NodePort at http://127.0.0.1:30080). Required on --backend cluster without one.
    #[arg(long)]
    pub url: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterOptions,
}

/// Runs the whole gate and returns its exit status; errors are already in the report.
pub async fn run(args: StressArgs, root: PathBuf) -> ExitStatus {
    let out = root.join(&args.out);
    let mut run = RunState::new(&root, &out);
    // Listening replaces the default "die at once" of Ctrl-C and SIGTERM, so that
    // whatever happens, the reports below get written. Children (cargo, the scenario
    // tests) receive the same signal and wind down on their own.
    let mut interrupts = Interrupts::new().ok();

    let config = match load_config(&root, &args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e:#}");
            run.fail_setup("read stress config", Instant::now(), &e);
            return run.finish(&args, "none", None);
        }
    };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let backend = match choose_backend(args.backend, ci, &root) {
        Ok(backend) => backend,
        Err(e) => {
            eprintln!("error: {e:#}");
            run.fail_setup("choose backend", Instant::now(), &e);
            return run.finish(&args, "none", Some(&config));
        }
    };
    let scenarios: Vec<String> = if args.scenarios.is_empty() {
        config.scenarios.iter().map(|s| s.name.clone()).collect()
    } else {
        args.scenarios.clone()
    };

    if args.cluster.dry_run {
        return match dry_run(&args, &config, &root, backend, &scenarios) {
            Ok(()) => ExitStatus::Passed,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitStatus::InfrastructureError
            }
        };
    }

    let prepared = match backend {
        Backend::Local => setup_local(&mut run, &root).map(Handover::Local),
        Backend::Kind | Backend::Cluster => setup_cluster(&mut run, &args, &config, &root, backend)
            .await
            .map(|(deployed, url)| Handover::Cluster {
                deployed: Box::new(deployed),
                url,
            }),
    };
    let Some(handover) = prepared else {
        return run.finish(&args, backend.kind().as_str(), Some(&config));
    };
    // The dev profile, like `cargo test`: the engine's microseconds per request are
    // noise against the milliseconds a capped replica spends, and it reuses the build
    // `cargo xtask ci` already made.
    let step = Instant::now();
    let tests = cargo_executable(
        &root,
        &[
            "test",
            "-p",
            "stress-tests",
            "--test",
            "scenarios",
            "--no-run",
        ],
        "scenarios",
    );
    let tests = match tests {
        Ok(exe) => {
            run.pass_setup("compile scenario tests", step);
            Some(exe)
        }
        Err(e) => {
            run.fail_setup("compile scenario tests", step, &e);
            None
        }
    };

    if let Some(tests) = tests.filter(|_| !run.setup_failed()) {
        for name in &scenarios {
            eprintln!("\n=== scenario {name} ({}) ===", backend.kind().as_str());
            let report = run_one(
                &tests,
                &root,
                &out,
                &args,
                backend,
                &handover,
                name,
                &mut interrupts,
            )
            .await;
            if !report.passed()
                && let Handover::Cluster { deployed, .. } = &handover
            {
                let dir = out.join("diagnostics").join(name);
                diagnostics(deployed, &dir).await;
            }
            let interrupted = report
                .error
                .as_deref()
                .is_some_and(|e| e.contains("interrupted"));
            run.scenarios.push(report);
            if interrupted {
                eprintln!("interrupted: skipping the remaining scenarios");
                break;
            }
        }
    }

    if let Handover::Cluster { deployed, .. } = handover
        && let Err(e) = crate::run::teardown(*deployed).await
    {
        eprintln!("warning: teardown failed: {e:#}");
    }
    run.finish(&args, backend.kind().as_str(), Some(&config))
}

/// What the scenario tests need from the backend setup.
enum Handover {
    Local(PathBuf),
    Cluster {
        deployed: Box<Deployed>,
        url: String,
    },
}

fn load_config(root: &Path, args: &StressArgs) -> anyhow::Result<StressConfig> {
    let path = root.join(&args.config);
    let mut config = StressConfig::load(&path)?;
    for assignment in &args.sets {
        config.apply_set(assignment)?;
    }
    let dir = config.manifests_dir();
    let manifests = Manifests::load(&dir).with_context(|| format!("reading {}", dir.display()))?;
    config.check_against(&manifests)?;
    for name in &args.scenarios {
        if config.scenario(name).is_none() {
            let known: Vec<&str> = config.scenarios.iter().map(|s| s.name.as_str()).collect();
            anyhow::bail!(
                "--scenario {name}: no such scenario in {} (known: {})",
                path.display(),
                known.join(", ")
            );
        }
    }
    if !(args.baseline_margin.is_finite() && args.baseline_margin >= 0.0) {
        anyhow::bail!(
            "--baseline-margin must be a non-negative fraction, got {}",
            args.baseline_margin
        );
    }
    Ok(config)
}

/// kind when it can work here, else local with a notice; never silently under CI.
fn choose_backend(asked: Option<Backend>, ci: bool, root: &Path) -> anyhow::Result<Backend> {
    if let Some(backend) = asked {
        return Ok(backend);
    }
    if ci {
        anyhow::bail!(
            "CI=true and no --backend: CI must say which engine it gates on \
             (--backend kind on GitHub runners, --backend local where Docker is missing)"
        );
    }
    let checks = [
        Check::DockerDaemon,
        Check::Tool {
            name: "kind",
            version_args: &["version"],
        },
    ];
    let report = crate::preflight::run(&checks, root);
    if report.passed() {
        eprintln!("backend: kind (Docker and kind are usable)");
        Ok(Backend::Kind)
    } else {
        eprintln!(
            "\n*** NOTICE: Docker or kind is not usable here, so the scenarios run on the LOCAL \
             backend (replicas as processes, scaleproof's port of the HPA). Pass --backend to \
             choose explicitly. ***\n{report}"
        );
        Ok(Backend::Local)
    }
}

fn dry_run(
    args: &StressArgs,
    config: &StressConfig,
    root: &Path,
    backend: Backend,
    scenarios: &[String],
) -> anyhow::Result<()> {
    match backend {
        Backend::Local => {
            println!("plan: backend local");
            println!("setup:");
            println!("  1. cargo build --release -p iris-server --bin iris-server");
            println!(
                "  2. probe cgroup CPU limits (v2 cpu.max or v1 cpu.cfs_quota_us; uncapped, with a warning, without permission)"
            );
            println!("  3. cargo test -p stress-tests --test scenarios --no-run");
        }
        Backend::Kind | Backend::Cluster => {
            let settings = cluster_settings(args, config, root, backend)?;
            print!("{}", crate::plan::plan(&settings)?);
        }
    }
    println!("scenarios (each: the scenarios test binary with --ignored --exact <test>):");
    for (i, name) in scenarios.iter().enumerate() {
        println!("  {}. {name} -> test {}", i + 1, test_name(name).0);
    }
    println!(
        "reports: {}/{{junit.xml,report.json,summary.md,timeline.svg}}",
        args.out.display()
    );
    Ok(())
}

fn cluster_settings(
    args: &StressArgs,
    config: &StressConfig,
    root: &Path,
    backend: Backend,
) -> anyhow::Result<Settings> {
    let (which, per_backend) = match backend {
        Backend::Cluster => (ClusterBackend::Cluster, &config.backend.cluster),
        _ => (ClusterBackend::Kind, &config.backend.kind),
    };
    let mut options = args.cluster.clone();
    options
        .namespace
        .get_or_insert_with(|| config.target.namespace.clone());
    let mut settings = Settings::resolve(which, options, root.to_path_buf())?;
    settings.manifests_dir = config.manifests_dir();
    settings.env_overrides = per_backend.env_overrides();
    Ok(settings)
}

fn setup_local(run: &mut RunState, root: &Path) -> Option<PathBuf> {
    let step = Instant::now();
    let built = cargo_executable(
        root,
        &[
            "build",
            "--release",
            "-p",
            "iris-server",
            "--bin",
            "iris-server",
        ],
        "iris-server",
    );
    let program = match built {
        Ok(program) => {
            run.pass_setup("build iris-server (release)", step);
            program
        }
        Err(e) => {
            run.fail_setup("build iris-server (release)", step, &e);
            return None;
        }
    };
    let step = Instant::now();
    let mode = CgroupDriver::detect().mode().clone();
    run.cpu_limit = Some(describe_cpu_limit(&mode));
    if let CpuLimitMode::Uncapped { reason } = &mode {
        eprintln!(
            "\n!!! WARNING: CPU limits cannot be enforced here ({reason}). Replicas run \
             UNCAPPED: the figures do not describe 200m pods. !!!\n"
        );
    }
    run.pass_setup("probe cgroup CPU limits", step);
    Some(program)
}

fn describe_cpu_limit(mode: &CpuLimitMode) -> String {
    match mode {
        CpuLimitMode::V2 { parent } => format!("cgroup v2 cpu.max under {}", parent.display()),
        CpuLimitMode::V1 { cpu, .. } => {
            format!("cgroup v1 cpu.cfs_quota_us under {}", cpu.display())
        }
        CpuLimitMode::Uncapped { reason } => format!("UNCAPPED: {reason}"),
    }
}

async fn setup_cluster(
    run: &mut RunState,
    args: &StressArgs,
    config: &StressConfig,
    root: &Path,
    backend: Backend,
) -> Option<(Deployed, String)> {
    let step = Instant::now();
    let settings = match cluster_settings(args, config, root, backend) {
        Ok(s) => s,
        Err(e) => {
            run.fail_setup("resolve cluster settings", step, &e);
            return None;
        }
    };
    let deployed = match crate::run::setup(&settings).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e:#}");
            run.fail_setup(
                "bring up cluster, metrics-server, image and workload",
                step,
                &e,
            );
            return None;
        }
    };
    run.pass_setup("bring up cluster, metrics-server, image and workload", step);
    // Each backend has its own default; never borrow another backend's address.
    let url = match backend {
        Backend::Kind => args
            .url
            .clone()
            .or_else(|| config.backend.kind.url.clone())
            .or_else(|| deployed.base_url()),
        _ => args
            .url
            .clone()
            .or_else(|| config.backend.cluster.url.clone()),
    };
    match url {
        Some(url) => Some((deployed, url)),
        None => {
            run.fail_setup(
                "where to send load",
                Instant::now(),
                &anyhow::anyhow!("--backend cluster needs --url (or backend.cluster.url in the config): where the Service is reachable"),
            );
            if let Err(e) = crate::run::teardown(deployed).await {
                eprintln!("warning: teardown failed: {e:#}");
            }
            None
        }
    }
}

async fn diagnostics(deployed: &Deployed, dir: &Path) {
    match deployed.write_diagnostics_to(dir).await {
        Ok(()) => eprintln!("diagnostics written to {}", dir.display()),
        Err(e) => eprintln!("warning: diagnostics bundle incomplete: {e:#}"),
    }
}

/// The dedicated test for a scenario, or the generic one with `SCALEPROOF_SCENARIO`.
fn test_name(scenario: &str) -> (&'static str, bool) {
    match scenario {
        "scale-up-1000" => ("scale_up_1000", true),
        "bottleneck-2000" => ("bottleneck_2000", true),
        "restricted-2000" => ("restricted_2000", true),
        _ => ("custom_scenario", false),
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs a cargo build command with JSON messages and returns the executable of the
/// artifact named `target` (so a custom target dir or profile is never guessed).
/// Compiler diagnostics still reach the terminal, rendered as usual.
fn cargo_executable(root: &Path, args: &[&str], target: &str) -> anyhow::Result<PathBuf> {
    let shown = format!("cargo {}", args.join(" "));
    eprintln!("$ {shown}");
    let output = std::process::Command::new(cargo())
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !output.status.success() {
        anyhow::bail!("{shown} exited with {}", output.status);
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == target)
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("{shown} reported no executable named {target}"))
}

/// Runs one scenario test and collects its report (or explains why there is none).
#[allow(clippy::too_many_arguments)]
async fn run_one(
    tests: &Path,
    root: &Path,
    out: &Path,
    args: &StressArgs,
    backend: Backend,
    handover: &Handover,
    name: &str,
    interrupts: &mut Option<Interrupts>,
) -> ScenarioReport {
    let started = Instant::now();
    let report_path = gate::scenario_report_path(out, name);
    let _ = std::fs::remove_file(&report_path);
    let (test, dedicated) = test_name(name);
    // The test binary itself, not `cargo test`: cargo exits at once on Ctrl-C, while
    // the test winds its backend down and writes its report; waiting for the test is
    // waiting for the report.
    let mut cmd = tokio::process::Command::new(tests);
    cmd.args([
        "--ignored",
        "--exact",
        test,
        "--nocapture",
        "--test-threads=1",
    ])
    .current_dir(root)
    .stdin(Stdio::null())
    .kill_on_drop(true);
    cmd.env(vars::BACKEND, backend.kind().as_str())
        .env(vars::CONFIG, root.join(&args.config))
        .env(vars::SET, args.sets.join("\n"))
        .env(vars::OUT, out);
    if !dedicated {
        cmd.env(vars::SCENARIO, name);
    }
    match handover {
        Handover::Local(bin) => {
            cmd.env(vars::SERVER_BIN, bin);
        }
        Handover::Cluster { deployed, url } => {
            cmd.env(vars::URL, url)
                .env(vars::NAMESPACE, &deployed.settings.namespace);
            if let Some(context) = &deployed.settings.context {
                cmd.env(vars::KUBE_CONTEXT, context);
            }
        }
    }
    let mut interrupted = false;
    let status = match cmd.spawn() {
        Ok(mut child) => {
            let waited = match interrupts.as_mut() {
                Some(i) => {
                    i.race(async { child.wait().await.context("waiting for cargo test") })
                        .await
                }
                None => child.wait().await.context("waiting for cargo test"),
            };
            match waited {
                Ok(status) => Some(status),
                Err(_) => {
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
            return failed_scenario(name, started, format!("cannot start cargo test: {e}"));
        }
    };
    match gate::read_scenario_report(&report_path) {
        Ok(mut report) => {
            if interrupted {
                report
                    .error
                    .get_or_insert_with(|| "interrupted (Ctrl-C)".into());
            }
            report
        }
        Err(_) if interrupted => failed_scenario(
            name,
            started,
            "interrupted (Ctrl-C) before a result was written".into(),
        ),
        Err(e) => failed_scenario(
            name,
            started,
            format!(
                "the scenario test exited ({}) without a result ({e}); its output above says why",
                status.map_or_else(|| "status unknown".into(), |s| s.to_string())
            ),
        ),
    }
}

fn failed_scenario(name: &str, started: Instant, error: String) -> ScenarioReport {
    ScenarioReport {
        name: name.to_string(),
        description: String::new(),
        bounds: ReplicaBounds { min: 0, max: 0 },
        duration_s: started.elapsed().as_secs_f64(),
        load: None,
        timeline: Default::default(),
        verdicts: Vec::new(),
        error: Some(error),
    }
}

/// What the run has gathered so far; [`RunState::finish`] turns it into reports.
struct RunState {
    root: PathBuf,
    out: PathBuf,
    started_at: String,
    setup: Vec<SetupStep>,
    scenarios: Vec<ScenarioReport>,
    cpu_limit: Option<String>,
}

impl RunState {
    fn new(root: &Path, out: &Path) -> Self {
        RunState {
            root: root.to_path_buf(),
            out: out.to_path_buf(),
            started_at: now_rfc3339(),
            setup: Vec::new(),
            scenarios: Vec::new(),
            cpu_limit: None,
        }
    }

    fn pass_setup(&mut self, name: &str, since: Instant) {
        self.setup.push(SetupStep {
            name: name.into(),
            outcome: Outcome::Pass,
            duration_s: since.elapsed().as_secs_f64(),
            message: None,
        });
    }

    fn fail_setup(&mut self, name: &str, since: Instant, error: &anyhow::Error) {
        self.setup.push(SetupStep {
            name: name.into(),
            outcome: Outcome::Error,
            duration_s: since.elapsed().as_secs_f64(),
            message: Some(format!("{error:#}")),
        });
    }

    fn setup_failed(&self) -> bool {
        self.setup.iter().any(|s| s.outcome != Outcome::Pass)
    }

    /// Comparisons, baseline, the four artifacts, the table and the job summary.
    fn finish(self, args: &StressArgs, backend: &str, config: Option<&StressConfig>) -> ExitStatus {
        let mut report = Report {
            schema_version: SCHEMA_VERSION,
            run: RunMeta {
                backend: backend.into(),
                git_sha: git_sha(&self.root),
                started_at: self.started_at.clone(),
                ended_at: now_rfc3339(),
                config: args.config.display().to_string(),
                tool_versions: tool_versions(backend),
                cpu_limit: self.cpu_limit.clone(),
            },
            setup: self.setup,
            scenarios: self.scenarios,
            comparisons: Vec::new(),
            baseline: Vec::new(),
        };
        if let Some(config) = config {
            for comparison in &config.compare {
                let load = |name: &str| report.scenario(name).and_then(|s| s.load.as_ref());
                if report.scenario(&comparison.numerator).is_some()
                    && report.scenario(&comparison.denominator).is_some()
                {
                    let v = verdict::compare(
                        comparison,
                        load(&comparison.numerator),
                        load(&comparison.denominator),
                    );
                    report.comparisons.push(v);
                }
            }
        }
        if let Some(path) = &args.baseline {
            match Report::read(&self.root.join(path)) {
                Ok(old) => report.baseline = baseline::compare(&report, &old, args.baseline_margin),
                Err(e) => report.setup.push(SetupStep {
                    name: "read baseline".into(),
                    outcome: Outcome::Error,
                    duration_s: 0.0,
                    message: Some(e.to_string()),
                }),
            }
        }
        match report.write_all(&self.out) {
            Ok(paths) => {
                for p in paths {
                    eprintln!("wrote {}", p.display());
                }
            }
            Err(e) => eprintln!("error: {e}"),
        }
        if let Ok(summary) = std::env::var("GITHUB_STEP_SUMMARY") {
            let md = scaleproof::report::markdown::render(&report);
            let appended = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&summary)
                .and_then(|mut f| std::io::Write::write_all(&mut f, md.as_bytes()));
            if let Err(e) = appended {
                eprintln!("warning: cannot append to GITHUB_STEP_SUMMARY ({summary}): {e}");
            }
        }
        println!("\n{}", table::render(&report));
        report.exit_status()
    }
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

fn tool_versions(backend: &str) -> BTreeMap<String, String> {
    let mut versions = BTreeMap::from([(
        "scaleproof".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )]);
    let mut tools: Vec<(&str, &[&str])> = vec![("rustc", &["--version"])];
    if backend != "local" {
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
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: StressArgs,
    }

    fn args(extra: &[&str]) -> StressArgs {
        let mut argv = vec!["stress"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).args
    }

    #[test]
    fn under_ci_the_backend_must_be_named() {
        let err =
            choose_backend(None, true, &crate::project_root()).expect_err("CI without --backend");
        assert!(
            err.to_string().contains("CI=true and no --backend"),
            "{err}"
        );
        assert_eq!(
            choose_backend(Some(Backend::Local), true, &crate::project_root()).expect("named"),
            Backend::Local
        );
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
        let a = args(&[
            "--backend",
            "local",
            "--config",
            config.to_str().expect("utf-8 path"),
            "--out",
            out.to_str().expect("utf-8 path"),
        ]);
        let status = run(a, crate::project_root()).await;
        assert_eq!(status, ExitStatus::InfrastructureError);
        let junit = std::fs::read_to_string(out.join("junit.xml")).expect("junit.xml written");
        assert!(
            junit.contains("stress.toml:5:1: unknown field `min_sucess_rate`"),
            "{junit}"
        );
        let report = Report::read(&out.join("report.json")).expect("report.json written");
        assert_eq!(report.setup[0].name, "read stress config");
        assert!(report.scenarios.is_empty());
    }

    #[tokio::test]
    async fn an_unknown_scenario_name_is_an_input_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        let a = args(&[
            "--backend",
            "local",
            "--scenario",
            "nope",
            "--out",
            out.to_str().expect("utf-8 path"),
        ]);
        assert_eq!(
            run(a, crate::project_root()).await,
            ExitStatus::InfrastructureError
        );
        let junit = std::fs::read_to_string(out.join("junit.xml")).expect("junit.xml written");
        assert!(
            junit.contains("--scenario nope: no such scenario"),
            "{junit}"
        );
    }

    #[test]
    fn dedicated_tests_exist_for_the_repository_scenarios() {
        let config =
            StressConfig::load(&crate::project_root().join("stress.toml")).expect("stress.toml");
        for scenario in &config.scenarios {
            assert!(
                test_name(&scenario.name).1,
                "{} has no dedicated #[test] in tests/scenarios.rs",
                scenario.name
            );
        }
        assert_eq!(test_name("my-own"), ("custom_scenario", false));
    }
}
