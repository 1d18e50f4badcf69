//! `scaleproof stress`: the gate's command line. The run itself is
//! [`scaleproof::gate::run`]; this module turns flags into its options and the
//! finished report into the table and the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use scaleproof::backend::BackendKind;
use scaleproof::backend::settings::ClusterOptions;
use scaleproof::gate::lanes::Lanes;
use scaleproof::gate::run::{self, StressOptions};
use scaleproof::report::{ExitStatus, table};

#[derive(Debug, Args)]
#[command(after_long_help = "\
Exit codes:
  0  every expectation held
  1  an expectation failed (see junit.xml, summary.md)
  2  setup or infrastructure failed, or the config is invalid

Artifacts (in --out): junit.xml, report.json (docs/report-schema.md), summary.md,
timeline.svg, handover.json (what the scenario tests were given), logs/ (local
replicas), diagnostics/ (cluster state on failure).

Relative paths (--config, --out, --baseline) are resolved against the repository root.

Examples:
  cargo xtask stress                                   # kind if Docker works, else local
  cargo xtask stress --backend local --scenario scale-up-1000
  cargo xtask stress --backend kind --dry-run          # print every command, run nothing
  cargo xtask stress --set scale-up-1000.expect.max_p95_ms=250
  cargo xtask stress --baseline main-run/report.json --baseline-margin 0.15
  cargo xtask stress --backend local --shared-namespace  # the reset between scenarios
  cargo xtask stress --backend kind --lanes 1          # one scenario at a time, in file order")]
pub struct StressArgs {
    /// Where the workload runs. Without it: kind when Docker and kind are usable, else
    /// local (with a notice). With CI=true it is required: CI never falls back silently.
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// The scenarios and their expectations.
    #[arg(long, default_value = "stress.toml")]
    pub config: PathBuf,
    /// Directory for the artifacts.
    #[arg(long, default_value = "target/scaleproof")]
    pub out: PathBuf,
    /// Override an expectation: SCENARIO.expect.KEY=VALUE (VALUE in TOML syntax), or the
    /// local backend's timing: backend.local.timing=kind (rehearses the kind gate's
    /// timing, loads and thresholds). Repeatable.
    #[arg(long = "set", value_name = "SCENARIO.expect.KEY=VALUE")]
    pub sets: Vec<String>,
    /// Run only these scenarios (repeatable; default: all, in file order).
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// A previous run's report.json (in CI: main's, from `scaleproof baseline fetch`):
    /// fail when p95, throughput or the time to the first scale-up regressed beyond
    /// the margins of [baseline] in the config. A missing file, or a run of another
    /// backend or with other pods, is noted in the summary and not compared.
    #[arg(long, value_name = "REPORT_JSON")]
    pub baseline: Option<PathBuf>,
    /// Allowed regression against --baseline, as a fraction, for every metric
    /// (default: [baseline] of the config, else 0.2).
    #[arg(long, value_name = "FRACTION")]
    pub baseline_margin: Option<f64>,
    /// Where load goes (default: backend.<backend>.url of the config; on kind, the
    /// NodePort at http://127.0.0.1:30080). Required on --backend cluster without one.
    #[arg(long)]
    pub url: Option<String>,
    /// Run every scenario in the one namespace setup deployed, reset before each (HPA
    /// deleted for two sync periods, one idle pod), instead of a namespace of its own
    /// prepared while the scenario before runs. What --backend cluster always does;
    /// on kind and local, for comparison.
    #[arg(long)]
    pub shared_namespace: bool,
    /// How many scenarios may run side by side, each lane in namespaces of its own:
    /// `auto` runs as many as the node's allocatable CPU holds by the pods' CPU
    /// limits (a lane: one scenario at maxReplicas plus the next one's namespace at
    /// minReplicas; at most 2, kind's node port pool); a number asks for that many
    /// and is narrowed, with the reason in the log and report.json, where they do not
    /// fit. `--lanes 1` is the file's order, one at a time. The shared namespace
    /// (--shared-namespace, --backend cluster) always has one lane.
    #[arg(long, default_value = "auto", value_name = "auto|N")]
    pub lanes: Lanes,
    #[command(flatten)]
    pub cluster: ClusterOptions,
}

pub fn main(args: StressArgs) -> ExitCode {
    let Ok(root) = std::env::current_dir() else {
        eprintln!("error: cannot read the current directory (run from the repository root)");
        return ExitCode::from(ExitStatus::InfrastructureError as u8);
    };
    let options = StressOptions {
        backend: args.backend,
        config: args.config,
        out: args.out,
        sets: args.sets,
        scenarios: args.scenarios,
        baseline: args.baseline,
        baseline_margin: args.baseline_margin,
        url: args.url,
        shared_namespace: args.shared_namespace,
        lanes: args.lanes,
        dry_run: args.cluster.dry_run,
        cluster: args.cluster,
        root,
        ci: std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
    };
    if options.dry_run {
        return match run::dry_run(&options) {
            Ok(plan) => {
                print!("{plan}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(ExitStatus::InfrastructureError as u8)
            }
        };
    }
    let runtime = match scaleproof::gate::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(ExitStatus::InfrastructureError as u8);
        }
    };
    let report = runtime.block_on(run::run(&options));
    println!("\n{}", table::render(&report));
    ExitCode::from(report.exit_status() as u8)
}
