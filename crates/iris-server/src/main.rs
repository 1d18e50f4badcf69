//! The `iris-server` binary: parse flags, run the server, turn errors into exit code 1.

use std::process::ExitCode;

use clap::Parser as _;
use iris_server::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match iris_server::startup::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Logging may not be set up when the error happened; stderr always is.
            eprintln!("iris-server: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
