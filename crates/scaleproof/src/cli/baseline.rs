//! `scaleproof baseline fetch` (`cargo xtask baseline fetch`): main's newest usable
//! report.json for `stress --baseline`, from the stress workflow's artifacts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use scaleproof::backend::BackendKind;
use scaleproof::baseline_fetch::{self, FetchOptions};
use scaleproof::gate::{read_config, run::expected_workload};

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
}

pub fn main(args: BaselineArgs) -> ExitCode {
    let BaselineCommand::Fetch {
        backend,
        out,
        config,
        workflow,
        branch,
        max_runs,
        gh,
    } = args.command;
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
