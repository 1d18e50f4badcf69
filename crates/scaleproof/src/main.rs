//! The `scaleproof` command line: one subcommand per job of the harness.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli {
    pub mod load;
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
    Load(cli::load::LoadArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Load(args) => cli::load::main(args),
    }
}
