//! Glue between `cargo xtask stress` and the scenario tests in `scenarios.rs`.
//!
//! xtask sets a backend up and hands it over through the environment
//! (`scaleproof::gate::vars`); each test runs one scenario of `stress.toml`, writes
//! its report where xtask collects it, and fails when an expectation failed.

use std::time::Duration;

use scaleproof::gate::{self, GateEnv};
use scaleproof::verdict::Outcome;
use tokio_util::sync::CancellationToken;

/// Runs the scenario `name` on the backend xtask prepared and asserts its verdicts.
pub fn run(name: &str) {
    let env = match GateEnv::from_env() {
        Ok(env) => env,
        Err(e) => panic!("cannot run scenario {name}: {e}"),
    };
    let scenario = match env.scenario(name) {
        Ok(s) => s.clone(),
        Err(e) => panic!("{e}"),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start the async runtime: {e}"),
    };
    let report = runtime.block_on(async {
        // Ctrl-C or SIGTERM stops the load early; the backend still cleans up (no
        // replica or cgroup is left behind) and the partial result is written (it
        // fails the "delivered as promised" guard).
        let cancel = CancellationToken::new();
        let on_interrupt = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                use tokio::signal::unix::{SignalKind, signal};
                let terminate = async {
                    match signal(SignalKind::terminate()) {
                        Ok(mut stream) => {
                            stream.recv().await;
                        }
                        Err(_) => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate => {}
                }
                eprintln!("interrupted: stopping the scenario and cleaning up");
                cancel.cancel();
            }
        });
        let report = gate::run_scenario(&env, &scenario, cancel).await;
        on_interrupt.abort();
        report
    });
    runtime.shutdown_timeout(Duration::from_secs(5));

    match gate::write_scenario_report(&env.out_dir, &report) {
        Ok(path) => eprintln!("scenario {name}: report written to {}", path.display()),
        Err(e) => panic!("scenario {name}: {e}"),
    }
    if let Some(error) = &report.error {
        panic!("scenario {name} could not run: {error}");
    }
    let failed: Vec<String> = report
        .verdicts
        .iter()
        .filter(|v| v.outcome != Outcome::Pass)
        .map(|v| format!("  - expected {}, measured {}", v.expected, v.measured))
        .collect();
    assert!(
        failed.is_empty(),
        "scenario {name} failed:\n{}",
        failed.join("\n")
    );
}
