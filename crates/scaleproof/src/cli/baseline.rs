//! `scaleproof baseline fetch` (`cargo xtask baseline fetch`): main's newest usable
//! report.json for `stress --baseline`, from the stress workflow's artifacts;
//! `scaleproof baseline compare`: two finished runs judged as `stress --baseline`
//! would judge the second against the first, without running anything.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use scaleproof::backend::BackendKind;
use scaleproof::baseline_fetch::{self, FetchOptions};
use scaleproof::gate::read_config;
use scaleproof::gate::run::{baseline_margins, expected_workload};
use scaleproof::report::{Outcome, Report, baseline};

#[derive(Debug, Args)]
pub struct BaselineArgs {
    #[command(subcommand)]
    command: BaselineCommand,
}

#[derive(Debug, Subcommand)]
enum BaselineCommand {
    /// Download the report.json of the newest successful run of the stress workflow
    /// on a push to main that ran on the same backend with the same pods (requests,
    /// limits, cost knob), trying older runs when an artifact expired or differs.
    /// Needs the GitHub CLI with a token that may read Actions (GH_TOKEN). Finding none
    /// is not an error: it is printed (and added to the job summary) and exit is 0,
    /// so the gate runs without a baseline. Exit 2 only when the file cannot be written.
    #[command(after_help = "Example (the PR workflow):
  cargo xtask baseline fetch --backend kind --out target/baseline/report.json
  cargo xtask stress --backend kind --baseline target/baseline/report.json")]
    Fetch {
        #[arg(long, value_enum)]
        backend: BackendKind,
        /// Where to write the baseline (removed first, so a stale one never stays).
        #[arg(long, default_value = "target/baseline/report.json")]
        out: PathBuf,
        /// The stress config: its manifests and backend settings say what pods the
        /// baseline must have had.
        #[arg(long, default_value = "stress.toml")]
        config: PathBuf,
        /// The workflow file that publishes baselines.
        #[arg(long, default_value = "stress.yml")]
        workflow: String,
        #[arg(long, default_value = "main")]
        branch: String,
        /// How many of the newest runs to try.
        #[arg(long, default_value_t = 10)]
        max_runs: usize,
        /// The GitHub CLI to call.
        #[arg(long, default_value = "gh")]
        gh: PathBuf,
    },
    /// Judge one finished run against another with the margins of a stress config,
    /// as `stress --baseline` would, and print every check. Exit 0 when all hold, 1
    /// when one fails, 2 when a report cannot be read or the two are not comparable
    /// (another backend, other pods). For example, to see whether run-to-run noise
    /// alone could fail a PR: compare two runs of the same commit.
    #[command(after_help = "Example:
  scaleproof baseline compare --baseline runs/seed-1/report.json runs/seed-2/report.json")]
    Compare {
        /// The run taken as the baseline (main's, in the PR workflow).
        #[arg(long)]
        baseline: PathBuf,
        /// The run judged against it.
        current: PathBuf,
        /// The stress config whose `[baseline]` margins apply.
        #[arg(long, default_value = "stress.toml")]
        config: PathBuf,
        /// Overrides every fraction of `[baseline]`, as `stress --baseline-margin`.
        #[arg(long)]
        baseline_margin: Option<f64>,
        /// Print the checks and the side-by-side figures as JSON (report.json's
        /// `baseline` and `against_baseline`) instead of lines.
        #[arg(long)]
        json: bool,
    },
}

pub fn main(args: BaselineArgs) -> ExitCode {
    match args.command {
        BaselineCommand::Compare {
            baseline,
            current,
            config,
            baseline_margin,
            json,
        } => compare(&baseline, &current, &config, baseline_margin, json),
        command @ BaselineCommand::Fetch { .. } => fetch(command),
    }
}

fn compare(
    baseline_path: &std::path::Path,
    current_path: &std::path::Path,
    config_path: &std::path::Path,
    fraction: Option<f64>,
    json: bool,
) -> ExitCode {
    let config = match read_config(config_path, &[]) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (old, now) = match (Report::read(baseline_path), Report::read(current_path)) {
        (Ok(old), Ok(now)) => (old, now),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (margins, per_scenario) = baseline_margins(Some(&config), fraction);
    let shown = baseline_path.display().to_string();
    let compared = baseline::compare(&now, &old, &shown, &margins, &per_scenario);
    let failed = compared
        .verdicts
        .iter()
        .filter(|v| v.outcome != Outcome::Pass)
        .count();
    let status = match (compared.verdicts.is_empty(), failed) {
        (true, _) if compared.comparison.note.is_some() => ExitCode::from(2),
        (_, 0) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    };
    if json {
        let value = serde_json::json!({
            "baseline": compared.verdicts,
            "against_baseline": compared.comparison,
        });
        match serde_json::to_string_pretty(&value) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
        return status;
    }
    if let Some(note) = &compared.comparison.note {
        println!("note: {note}");
    }
    for v in &compared.verdicts {
        println!(
            "{} {}: {} ({})",
            if v.outcome == Outcome::Pass {
                "ok  "
            } else {
                "FAIL"
            },
            v.check,
            v.measured,
            v.expected
        );
    }
    println!(
        "{} of {} baseline checks hold: {} against {}",
        compared.verdicts.len() - failed,
        compared.verdicts.len(),
        current_path.display(),
        shown
    );
    status
}

fn fetch(command: BaselineCommand) -> ExitCode {
    let BaselineCommand::Fetch {
        backend,
        out,
        config,
        workflow,
        branch,
        max_runs,
        gh,
    } = command
    else {
        return ExitCode::from(2);
    };
    // Without a readable config, any pods will do: the gate still refuses to compare
    // a baseline whose pods differ, and says so.
    let workload = match read_config(&config, &[]) {
        Ok(config) => expected_workload(&config, backend),
        Err(e) => {
            tracing::warn!("{e}; accepting a baseline with any pods");
            None
        }
    };
    let options = FetchOptions {
        gh,
        workflow,
        branch,
        backend,
        workload,
        max_runs,
        timeout: Duration::from_secs(120),
        out,
    };
    let message = match baseline_fetch::fetch(&options) {
        Ok(Ok(found)) => {
            for s in &found.skipped {
                println!("passed over {s}");
            }
            format!(
                "baseline: run {} of {} ({}, {}) -> {}",
                found.run_id,
                options.branch,
                found.head_sha,
                found.created_at,
                options.out.display()
            )
        }
        Ok(Err(none)) => format!("{none}; the gate runs without one"),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{message}");
    scaleproof::report::append_to_step_summary(&format!("{message}\n\n"));
    ExitCode::SUCCESS
}
