//! The harness of the scenario tests (`scenarios.rs`): one libtest-mimic trial per
//! scenario of the config, so `stress.toml` is the single list of scenarios.
//!
//! Each trial runs its scenario on the backend the orchestrator prepared
//! ([`scaleproof::gate::run_scenario`]), writes the scenario's report where the
//! orchestrator collects it, and fails when an expectation failed.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use scaleproof::gate::handover::Handover;
use scaleproof::gate::{self, ScenarioContext};
use scaleproof::report::Outcome;
use scaleproof::scenario::StressConfig;
use tokio_util::sync::CancellationToken;

/// The message of a scenario test run without a prepared backend.
pub const NEEDS_BACKEND: &str = "needs a backend: run by `cargo xtask stress`";

/// Parses the test harness arguments, builds the trials and runs them.
pub fn main() -> ExitCode {
    scaleproof::logging::init();
    let args = Arguments::from_args();
    let handover = match Handover::from_env() {
        Ok(handover) => handover,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(101);
        }
    };
    match trials(handover) {
        Ok(trials) => libtest_mimic::run(&args, trials).exit_code(),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(101)
        }
    }
}

/// One trial per scenario: of the handed-over config (runnable), or without a
/// hand-over of the repository's stress.toml (listed, ignored).
pub fn trials(handover: Option<Handover>) -> Result<Vec<Trial>, String> {
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
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stress.toml");
            let config = StressConfig::load(&path).map_err(|e| e.to_string())?;
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
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

#[cfg(test)]
mod tests {
    use scaleproof::backend::BackendKind;
    use scaleproof::cluster::KubeAccess;
    use scaleproof::gate::handover::{self, Target};

    use super::*;

    #[test]
    fn without_a_handover_the_repository_scenarios_are_listed_and_ignored() {
        let trials = trials(None).expect("stress.toml parses");
        let names: Vec<&str> = trials.iter().map(Trial::name).collect();
        assert!(names.contains(&"scale-up-1000"), "{names:?}");
        assert!(trials.iter().all(Trial::has_ignored_flag));
    }

    #[test]
    fn a_scenario_added_to_the_config_is_a_test_of_its_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut text = std::fs::read_to_string(repo.join("stress.toml")).expect("stress.toml");
        text = text.replace(
            "manifests = \"k8s\"",
            &format!("manifests = {:?}", repo.join("k8s")),
        );
        text.push_str("\n[[scenario]]\nname = \"added-by-a-user\"\nrequests = 20\n");
        let config = dir.path().join("stress.toml");
        std::fs::write(&config, text).expect("write config");
        let handover = Handover {
            version: handover::VERSION,
            backend: BackendKind::Local,
            config,
            sets: Vec::new(),
            out_dir: dir.path().join("out"),
            profile: BackendKind::Local,
            target: Target {
                access: KubeAccess::Url {
                    url: "http://127.0.0.1:1".into(),
                },
                namespace: "iris".into(),
                url: "http://127.0.0.1:2".into(),
                hpa_sync_period_s: 1.0,
            },
        };
        let listed = trials(None).expect("repository trials").len();
        let trials = trials(Some(handover)).expect("trials");
        let names: Vec<&str> = trials.iter().map(Trial::name).collect();
        assert_eq!(names.len(), listed + 1, "{names:?}");
        assert_eq!(names.last(), Some(&"added-by-a-user"), "{names:?}");
        assert!(trials.iter().all(|t| !t.has_ignored_flag()), "runnable");
    }
}
