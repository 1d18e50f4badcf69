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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = (|| -> anyhow::Result<()> {
        let sh = xshell::Shell::new()?;
        sh.change_dir(project_root());
        match cli.command {
            Command::Ci => ci::run(&sh),
            Command::Cluster(args) => cluster_cmd::run(args, project_root()),
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

/// The repository root: xtask lives one level below it.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
