//! The `scaleproof` binary used from another repository, as a released binary is:
//! there is no stress-tests crate to compile, so the gate runs the scenarios with its
//! own hidden `scenario-tests` subcommand, and a container runs the `command` its
//! `[backend.local.containers.*]` entry gives.

use serde_json::Value;

use crate::support::{run_stress_in, user_config};

#[test]
fn the_binary_runs_the_gate_in_a_directory_without_the_workspace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = user_config(
        r#"
[[scenario]]
name = "outside-smoke"
description = "a few requests, one pod"
rate = 4
duration_s = 4
[scenario.expect]
min_success_rate = 1.0
max_peak_replicas = 1
"#,
    );
    std::fs::write(dir.path().join("stress.toml"), config).expect("write stress.toml");
    let output = run_stress_in(dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(
        stderr.contains("scaleproof scenario-tests"),
        "says who runs the scenarios:\n{stderr}"
    );

    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    let steps: Vec<&str> = report["setup"]
        .as_array()
        .expect("setup steps")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(
        !steps.iter().any(|s| s.contains("compile")),
        "nothing is compiled outside the workspace: {steps:?}"
    );
    let scenario = &report["scenarios"][0];
    assert_eq!(scenario["name"], "outside-smoke");
    assert!(scenario["error"].is_null(), "{scenario}");
    assert!(
        scenario["load"]["ok"].as_u64().unwrap_or(0) > 0,
        "load was sent: {}",
        scenario["load"]
    );
}
