//! The scenarios of `stress.toml`, one test each. They need a backend, which
//! `cargo xtask stress` sets up; a plain `cargo test` skips them (`#[ignore]`).

const NEEDS_BACKEND: &str = "needs a backend: run by `cargo xtask stress`";

/// The original Scenario 2: 1000 requests from 10 workers make the HPA scale out.
#[test]
#[ignore = "needs a backend: run by `cargo xtask stress`"]
fn scale_up_1000() {
    stress_tests::run("scale-up-1000");
}

/// The original Scenario 3: 2000 requests, demand beyond what 3 pods can serve.
#[test]
#[ignore = "needs a backend: run by `cargo xtask stress`"]
fn bottleneck_2000() {
    stress_tests::run("bottleneck-2000");
}

/// 2000 requests with the HPA restricted to 1 pod: throughput plateaus.
#[test]
#[ignore = "needs a backend: run by `cargo xtask stress`"]
fn restricted_2000() {
    stress_tests::run("restricted-2000");
}

/// Any other scenario of the config, named by `SCALEPROOF_SCENARIO`.
#[test]
#[ignore = "needs a backend: run by `cargo xtask stress`"]
fn custom_scenario() {
    match std::env::var(scaleproof::gate::vars::SCENARIO) {
        Ok(name) if !name.is_empty() => stress_tests::run(&name),
        _ => panic!("{NEEDS_BACKEND} (with SCALEPROOF_SCENARIO naming the scenario)"),
    }
}
