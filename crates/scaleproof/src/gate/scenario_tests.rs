//! The harness of the scenario tests: one libtest-mimic trial per scenario of the
//! config, so `stress.toml` is the single list of scenarios. Two binaries run it: this
//! workspace's integration test (`tests/scenarios.rs`, package `stress-tests`), and
//! the `scaleproof` binary itself (`scaleproof scenario-tests`, hidden), which is what
//! the gate runs from any other repository, where there is no such crate to compile.
//!
//! Each trial runs its scenario on the backend the orchestrator prepared
//! ([`crate::gate::run_scenario`]), writes the scenario's report where the
//! orchestrator collects it, and fails when an expectation failed.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::gate::handover::Handover;
use crate::gate::{self, ScenarioContext};
use crate::report::Outcome;
use crate::scenario::StressConfig;
use libtest_mimic::{Arguments, Failed, Trial};
use tokio_util::sync::CancellationToken;

/// The message of a scenario test run without a prepared backend.
pub const NEEDS_BACKEND: &str = "needs a backend: run by `cargo xtask stress`";

/// Parses the test harness arguments (`args`, the program name first), builds the
/// trials and runs them. Without a hand-over the scenarios of `listing` are listed
/// and ignored.
pub fn main<I>(args: I, listing: &Path) -> ExitCode
where
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString> + Clone,
{
    crate::logging::init();
    let args = Arguments::from_iter(args);
    let handover = match Handover::from_env() {
        Ok(handover) => handover,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(101);
        }
    };
    match trials(handover, listing) {
        Ok(trials) => libtest_mimic::run(&args, trials).exit_code(),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(101)
        }
    }
}

/// One trial per scenario: of the handed-over config (runnable), or without a
/// hand-over of the config at `listing` (listed, ignored).
pub fn trials(handover: Option<Handover>, listing: &Path) -> Result<Vec<Trial>, String> {
    match handover {
        Some(handover) => {
            let ctx = Arc::new(ScenarioContext::new(handover).map_err(|e| e.to_string())?);
            Ok(ctx
                .config
                .scenarios
                .iter()
                .map(|scenario| {
                    let ctx = Arc::clone(&ctx);
                    let name = scenario.name.clone();
                    Trial::test(scenario.name.clone(), move || run(&ctx, &name))
                })
                .collect())
        }
        None => {
            let config =
                StressConfig::load(listing).map_err(|e| format!("{e} (and {NEEDS_BACKEND})"))?;
            Ok(config
                .scenarios
                .iter()
                .map(|s| {
                    Trial::test(s.name.clone(), || Err(NEEDS_BACKEND.into()))
                        .with_ignored_flag(true)
                })
                .collect())
        }
    }
}

/// Runs the scenario `name` on the prepared backend and asserts its verdicts.
fn run(ctx: &ScenarioContext, name: &str) -> Result<(), Failed> {
    let scenario = ctx
        .config
        .scenario(name)
        .ok_or_else(|| format!("no scenario {name} in {}", ctx.config.path.display()))?
        .clone();
    let runtime = gate::runtime().map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let report = runtime.block_on(async {
        // Ctrl-C or SIGTERM stops the load early; the backend still cleans up (no
        // replica or cgroup is left behind) and the partial result is written.
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
        let report = gate::run_scenario(ctx, &scenario, cancel).await;
        on_interrupt.abort();
        report
    });
    runtime.shutdown_timeout(Duration::from_secs(5));

    let path = gate::write_scenario_report(&ctx.handover.out_dir, &report)
        .map_err(|e| format!("scenario {name}: cannot write its report: {e}"))?;
    eprintln!("scenario {name}: report written to {}", path.display());
    if let Some(error) = &report.error {
        return Err(format!("scenario {name} could not run: {error}").into());
    }
    let failed: Vec<String> = report
        .verdicts
        .iter()
        .filter(|v| v.outcome != Outcome::Pass)
        .map(|v| format!("  - expected {}, measured {}", v.expected, v.measured))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("scenario {name} failed:\n{}", failed.join("\n")).into())
    }
}
