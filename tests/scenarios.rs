//! The scenarios of `stress.toml`, one test each, named after the scenario.
//!
//! `cargo xtask stress` prepares a backend and runs this binary once per scenario
//! (`--exact <name>`), handing the run over in the file `SCALEPROOF_HANDOVER` names.
//! Without it (a plain `cargo test`) the scenarios of the repository's stress.toml
//! are listed and ignored: they need a backend.

fn main() -> std::process::ExitCode {
    stress_tests::main()
}
