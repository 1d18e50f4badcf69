//! Orchestration for scaleproof: `cargo xtask <command>` (see `cargo xtask --help`).
//!
//! Flat and small on purpose, like rust-analyzer's xtask: each command is one module,
//! external tools run through xshell so every invocation is visible and injection-safe.

mod ci;
mod cluster_cmd;
mod image;
mod plan;
mod preflight;
mod run;
mod settings;
mod stress;
mod versions;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "scaleproof's orchestration commands", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run what CI runs: rustfmt check, clippy with -D warnings, cargo test --workspace.
    Ci,
    /// Bring the kind (or an existing) cluster up with the workload, tear it down, or
    /// show its state. `cluster up --dry-run` prints every step without running any.
    Cluster(cluster_cmd::ClusterArgs),
    /// The gate: set a backend up (kind, an existing cluster, or local processes), run
    /// the scenarios of stress.toml as integration tests, judge them, and write
    /// junit.xml, report.json, summary.md and timeline.svg. Exit 0 pass, 1 an
    /// expectation failed, 2 setup/infrastructure error.
    Stress(Box<stress::StressArgs>),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Stress(args) = cli.command {
        return stress_main(*args);
    }
    let result = (|| -> anyhow::Result<()> {
        let sh = xshell::Shell::new()?;
        sh.change_dir(project_root());
        match cli.command {
            Command::Ci => ci::run(&sh),
            Command::Cluster(args) => cluster_cmd::run(args, project_root()),
            Command::Stress(_) => unreachable!("handled above"),
        }
    })();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `cargo xtask stress` has its own exit codes (0, 1, 2), so it bypasses the
/// error-to-exit-1 mapping the other commands share.
fn stress_main(args: stress::StressArgs) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let status = runtime.block_on(stress::run(args, project_root()));
    std::process::ExitCode::from(status as u8)
}

/// The repository root: xtask lives one level below it.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
