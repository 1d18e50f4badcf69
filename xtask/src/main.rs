//! `cargo xtask <command>`: the project's chores, as glue (see `cargo xtask --help`).
//!
//! Small and flat on purpose, like rust-analyzer's xtask: it depends only on clap,
//! xshell and anyhow, so `cargo xtask ci` starts in seconds on a cold target
//! directory, before the harness (kube, tokio, ...) is compiled. Everything with
//! logic lives in the `scaleproof` crate, where it is tested; `stress` and `cluster`
//! hand their arguments to the `scaleproof` binary unchanged.

mod ci;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", about = "scaleproof's chores", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// What CI runs: rustfmt check (first), clippy -D warnings, cargo test --workspace.
    Ci,
    /// The gate: `scaleproof stress ARGS...` (builds it first). Sets a backend up
    /// (kind, an existing cluster, or local processes), runs the scenarios of
    /// stress.toml as integration tests, writes junit.xml, report.json, summary.md and
    /// timeline.svg. Exit 0 pass, 1 an expectation failed, 2 setup/infrastructure
    /// error. `cargo xtask stress --help` shows every flag.
    #[command(disable_help_flag = true)]
    Stress {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The cluster part of `stress` by hand: `scaleproof cluster up|down|status ARGS...`.
    #[command(disable_help_flag = true)]
    Cluster {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Main's newest usable report.json for `stress --baseline`:
    /// `scaleproof baseline fetch ARGS...` (the PR workflow's step; needs `gh`).
    #[command(disable_help_flag = true)]
    Baseline {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// One pod's capacity at its CPU limit and the scenario numbers that follow:
    /// `scaleproof calibrate ARGS...` (`cargo xtask calibrate --help` shows how).
    #[command(disable_help_flag = true)]
    Calibrate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = project_root();
    match cli.command {
        Command::Ci => {
            let sh = xshell::Shell::new()?;
            sh.change_dir(&root);
            ci::run(&sh)
        }
        Command::Stress { args } => scaleproof(&root, "stress", &args),
        Command::Cluster { args } => scaleproof(&root, "cluster", &args),
        Command::Baseline { args } => scaleproof(&root, "baseline", &args),
        Command::Calibrate { args } => scaleproof(&root, "calibrate", &args),
    }
}

/// Replaces this process with `cargo run -p scaleproof -- SUBCOMMAND ARGS...`, run
/// from the repository root (relative paths in ARGS mean the same as in the README).
///
/// `exec`, not a child: cargo itself execs the binary once built, so Ctrl-C reaches
/// the harness alone and it can tear down and write its reports before the shell
/// prompt returns. The dev profile, like `cargo test`: it reuses what `cargo xtask
/// ci` built, and the harness spends its time waiting for replicas, not computing.
fn scaleproof(root: &Path, subcommand: &str, args: &[String]) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let error = std::process::Command::new(&cargo)
        .args([
            "run",
            "--quiet",
            "--package",
            "scaleproof",
            "--bin",
            "scaleproof",
            "--",
        ])
        .arg(subcommand)
        .args(args)
        .current_dir(root)
        .exec();
    Err(error).with_context(|| format!("cannot run `{cargo} run -p scaleproof -- {subcommand}`"))
}

/// The repository root: xtask lives one level below it.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
