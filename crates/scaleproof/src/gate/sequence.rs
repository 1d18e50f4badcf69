//! The scenarios in order, each in a namespace of its own prepared while the one
//! before it runs (kind and local), or all in the shared namespace with a reset
//! before each (`--backend cluster`, see [`crate::backend::fresh`]).
//!
//! With fresh namespaces the critical path is: prepare the first namespace, then
//! for each scenario run it while the next one's namespace is prepared beside it,
//! and delete its own in the background. What each scenario waited for its
//! namespace is in its report (`namespace.waited_s`): 0 once the pipeline runs.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::GateError;
use super::handover::Handover;
use super::run::{ScenarioTests, StressOptions, run_one};
use crate::backend::fresh::{FreshNamespaces, ReadyNamespace};
use crate::backend::{Backend, BackendError, Interrupts};
use crate::report::{self, NamespaceReport, PhasesReport, ScenarioReport};
use crate::scenario::StressConfig;

/// How long the end of the run waits for its namespace deletions to be accepted.
const DELETE_WAIT: Duration = Duration::from_secs(15);

/// What every scenario of the run shares.
pub(super) struct Run<'a> {
    pub backend: &'a Backend,
    pub tests: &'a ScenarioTests,
    pub options: &'a StressOptions,
    pub config: &'a StressConfig,
    pub out: &'a Path,
    /// The run's hand-over (the shared namespace), and where it was written.
    pub handover: &'a Handover,
    pub handover_path: &'a Path,
    /// The shared namespace (setup's).
    pub namespace: &'a str,
}

/// Runs `names` in order and returns their reports; stops after an interrupted one.
pub(super) async fn run_scenarios(
    run: &Run<'_>,
    fresh: Option<&FreshNamespaces>,
    names: &[String],
    interrupts: &mut Option<Interrupts>,
) -> Vec<ScenarioReport> {
    let profile = run.config.profile(run.handover.backend);
    let overrides = |name: &str| {
        run.config
            .scenario(name)
            .map(|s| s.on(profile).hpa)
            .unwrap_or_default()
    };
    let prepare = |fresh: &FreshNamespaces, index: usize| {
        names
            .get(index)
            .map(|name| (index, fresh.prepare(index, name, &overrides(name))))
    };
    let mut next = fresh.and_then(|f| prepare(f, 0));
    let mut deletions: Vec<JoinHandle<()>> = Vec::new();
    let mut reports = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let backend_kind = run.handover.backend;
        tracing::info!("=== scenario {name} ({backend_kind}) ===");
        let (mut report, own) = match (fresh, next.take()) {
            (Some(fresh), Some((_, preparing))) => {
                let waiting = Instant::now();
                let abort = preparing.abort_handle();
                let waited = match interrupts.as_mut() {
                    Some(i) => {
                        i.race(async { Ok::<_, BackendError>(preparing.await) })
                            .await
                    }
                    None => Ok(preparing.await),
                };
                let waited_s = waiting.elapsed().as_secs_f64();
                let ready = match waited {
                    Ok(done) => {
                        done.unwrap_or_else(|e| Err(format!("preparing the namespace failed: {e}")))
                    }
                    Err(_) => {
                        // Ctrl-C while waiting: no scenario runs; its namespace goes.
                        abort.abort();
                        deletions.push(fresh.delete(&fresh.target_for(index, name)));
                        reports.push(ScenarioReport::failed(
                            name,
                            waited_s,
                            (&GateError::Interrupted(
                                "Ctrl-C or SIGTERM while its namespace was being prepared".into(),
                            ))
                                .into(),
                        ));
                        break;
                    }
                };
                next = prepare(fresh, index + 1);
                if index == 0 {
                    // Setup's namespace proved the image runs and metrics flow; the
                    // scenarios do not use it.
                    deletions.push(fresh.delete(fresh.base()));
                }
                let own = fresh.target_for(index, name);
                let report = match ready {
                    Err(why) => {
                        ScenarioReport::failed(name, waited_s, (&GateError::Setup(why)).into())
                    }
                    Ok(ready) => {
                        in_own_namespace(run, fresh, &ready, name, waited_s, interrupts).await
                    }
                };
                (report, Some(own))
            }
            _ => (
                run_one(
                    run.tests,
                    run.handover_path,
                    run.options,
                    run.out,
                    name,
                    interrupts,
                )
                .await,
                None,
            ),
        };
        let namespace = own.as_ref().map_or(run.namespace, |t| t.namespace.as_str());
        // The simulated cluster lives here, not in the test: place the load's start
        // among its loops.
        if let Some(at) = report
            .load_started_at
            .as_deref()
            .and_then(report::parse_rfc3339)
            && let Some(phases) = run.backend.phases_at(at)
        {
            report.phases = Some(PhasesReport::new(
                &phases,
                namespace,
                &run.config.target.hpa,
            ));
        }
        if !report.passed() {
            // Before the namespace goes: what a person needs to understand it.
            run.backend
                .write_diagnostics(&run.out.join("diagnostics").join(name), own.as_ref())
                .await;
        }
        if let (Some(fresh), Some(own)) = (fresh, &own) {
            deletions.push(fresh.delete(own));
        }
        let interrupted = report
            .error
            .as_ref()
            .is_some_and(|e| e.kind == "interrupted");
        reports.push(report);
        if interrupted {
            tracing::warn!("interrupted: skipping the remaining scenarios");
            break;
        }
    }
    // A namespace prepared for a scenario that will not run (interrupted).
    if let (Some(fresh), Some((index, preparing))) = (fresh, next.take()) {
        preparing.abort();
        let _ = preparing.await;
        deletions.push(fresh.delete(&fresh.target_for(index, &names[index])));
    }
    for deletion in deletions {
        if tokio::time::timeout(DELETE_WAIT, deletion).await.is_err() {
            tracing::warn!("a namespace deletion did not finish within {DELETE_WAIT:?}");
        }
    }
    reports
}

/// Runs scenario `name` in `ready`, its own namespace.
async fn in_own_namespace(
    run: &Run<'_>,
    fresh: &FreshNamespaces,
    ready: &ReadyNamespace,
    name: &str,
    waited_s: f64,
    interrupts: &mut Option<Interrupts>,
) -> ScenarioReport {
    let handover = Handover {
        target: ready.target(fresh.template()),
        fresh_namespace: true,
        ..run.handover.clone()
    };
    let mut report = match handover.write_to(&Handover::path_for(run.out, name)) {
        Err(e) => ScenarioReport::failed(name, 0.0, (&GateError::Setup(e.to_string())).into()),
        Ok(path) => run_one(run.tests, &path, run.options, run.out, name, interrupts).await,
    };
    report.namespace = Some(NamespaceReport {
        name: ready.prepared.target.namespace.clone(),
        node_port: ready.node_port,
        prepare_s: ready.report.took.as_secs_f64(),
        waited_s,
    });
    report
}
