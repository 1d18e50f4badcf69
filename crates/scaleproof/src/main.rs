//! The `scaleproof` command line: one subcommand per job of the harness.
//!
//! The front end: flags in, exit code out, and what people read on the terminal.
//! Everything else is the library's; it reports progress through `tracing`, which
//! [`logging`] renders (human on a terminal, plain in CI, `RUST_LOG` respected).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli {
    pub mod baseline;
    pub mod calibrate;
    pub mod cluster;
    pub mod load;
    pub mod stress;
}

/// Prove that a service autoscales, and gate pull requests on it.
#[derive(Debug, Parser)]
#[command(name = "scaleproof", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send HTTP load to a service and measure throughput, success rate and latency
    Load(Box<cli::load::LoadArgs>),
    /// The gate: set a backend up (kind, an existing cluster, or local processes), run
    /// the scenarios of stress.toml as integration tests, judge them, and write
    /// junit.xml, report.json, summary.md and timeline.svg. Exit 0 pass, 1 an
    /// expectation failed, 2 setup/infrastructure error
    Stress(Box<cli::stress::StressArgs>),
    /// Bring the kind (or an existing) cluster up with the workload, tear it down, or
    /// show its state. `cluster up --dry-run` prints every step without running any
    Cluster(cli::cluster::ClusterArgs),
    /// Main's newest usable report.json, for `stress --baseline` in the PR workflow:
    /// `baseline fetch --backend kind`
    Baseline(cli::baseline::BaselineArgs),
    /// Measure one pod's capacity at its CPU limit (an open-loop staircase through the
    /// gate) and propose the scenario numbers that follow from it, with their
    /// arithmetic
    Calibrate(Box<cli::calibrate::CalibrateArgs>),
    /// The scenario tests, run by `stress` itself outside this workspace (libtest
    /// arguments: `--exact NAME`, `--list`); needs the hand-over `stress` writes
    #[command(hide = true)]
    ScenarioTests {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    scaleproof::logging::init();
    match cli.command {
        Command::Load(args) => cli::load::main(*args),
        Command::Stress(args) => cli::stress::main(*args),
        Command::Baseline(args) => cli::baseline::main(args),
        Command::Calibrate(args) => cli::calibrate::main(*args),
        Command::ScenarioTests { args } => scaleproof::gate::scenario_tests::main(
            std::iter::once(std::ffi::OsString::from("scaleproof scenario-tests")).chain(args),
            std::path::Path::new("stress.toml"),
        ),
        Command::Cluster(args) => {
            let root = std::env::current_dir().unwrap_or_else(|_| ".".into());
            match cli::cluster::run(args, root) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
