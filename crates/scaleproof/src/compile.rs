//! Building the workspace's own artifacts with cargo: the service executable the
//! local backend runs, and the scenario test binary the gate runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why cargo could not produce an executable.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot run `{line}`: {source}")]
    Spawn {
        line: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{line}` exited with {status} (the compiler's messages are above)")]
    Failed {
        line: String,
        status: std::process::ExitStatus,
    },
    #[error("`{line}` reported no executable named {target}")]
    NoExecutable { line: String, target: String },
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs a cargo build command in `root` with JSON messages and returns the executable
/// of the artifact named `target` (so a custom target dir or profile is never
/// guessed). Compiler diagnostics still reach the terminal, rendered as usual.
pub fn cargo_executable(root: &Path, args: &[&str], target: &str) -> Result<PathBuf, BuildError> {
    let line = format!("cargo {}", args.join(" "));
    tracing::info!("$ {line}");
    let output = Command::new(cargo())
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| BuildError::Spawn {
            line: line.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(BuildError::Failed {
            line,
            status: output.status,
        });
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == target)
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| BuildError::NoExecutable {
            line,
            target: target.to_string(),
        })
}

/// Whether `root` is a workspace with scaleproof's scenario-test crate (`tests/`,
/// package `stress-tests`): then the gate compiles it, so the scenarios run as this
/// workspace's integration tests. Anywhere else the `scaleproof` binary runs them
/// itself (`scaleproof scenario-tests`), so a released binary needs no toolchain.
pub fn has_scenario_tests_crate(root: &Path) -> bool {
    std::fs::read_to_string(root.join("tests/Cargo.toml"))
        .is_ok_and(|manifest| manifest.contains("name = \"stress-tests\""))
}
