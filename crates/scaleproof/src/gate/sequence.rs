//! The scenarios of a run: in lanes of fresh namespaces (kind and local), or one
//! after the other in the shared namespace with a reset before each (`--backend
//! cluster`, `--shared-namespace`; see [`crate::backend::fresh`]).
//!
//! Lanes take scenarios from one queue in the [`LanePlan`]'s order. The queue keeps
//! one namespace per lane in preparation ahead: when a lane takes its next scenario
//! the namespace after it starts being prepared, so a lane finishing a scenario
//! finds the next one ready. A finished scenario's namespace is deleted in the
//! background. What each scenario waited for its namespace is in its report
//! (`namespace.waited_s`): 0 once the queue runs ahead; which lane ran it and what
//! ran beside it in `lane`. One lane is the serial order of the file.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::GateError;
use super::handover::Handover;
use super::lanes::LanePlan;
use super::run::{ScenarioTests, StressOptions, run_one};
use crate::backend::Backend;
use crate::backend::fresh::{FreshNamespaces, ReadyNamespace};
use crate::cluster;
use crate::report::{self, LaneReport, NamespaceReport, PhasesReport, ScenarioReport};
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

/// Runs `names` as `plan` says (in the shared namespace without `fresh`) and
/// returns their reports in the order of `names`; after a Ctrl-C, only those that
/// ran.
pub(super) async fn run_scenarios(
    run: &Run<'_>,
    fresh: Option<&FreshNamespaces>,
    names: &[String],
    plan: &LanePlan,
    stop: &CancellationToken,
) -> Vec<ScenarioReport> {
    match fresh {
        None => in_shared_namespace(run, names, stop).await,
        Some(fresh) => in_lanes(run, fresh, names, plan, stop).await,
    }
}

/// One after the other in setup's namespace, each after a reset (in the test).
async fn in_shared_namespace(
    run: &Run<'_>,
    names: &[String],
    stop: &CancellationToken,
) -> Vec<ScenarioReport> {
    let mut reports = Vec::new();
    for name in names {
        tracing::info!("=== scenario {name} ({}) ===", run.handover.backend);
        let mut report = run_one(
            run.tests,
            run.handover_path,
            run.options,
            run.out,
            name,
            stop,
        )
        .await;
        annotate(run, &mut report, None).await;
        let interrupted = was_interrupted(&report);
        reports.push(report);
        if interrupted {
            tracing::warn!("interrupted: skipping the remaining scenarios");
            break;
        }
    }
    reports
}

/// The scenarios' queue: those not yet being prepared, in the plan's order, and
/// those being prepared (or ready), oldest first.
struct Queue {
    pending: VecDeque<usize>,
    preparing: VecDeque<(usize, JoinHandle<Result<ReadyNamespace, String>>)>,
}

/// What the lanes of one run share.
struct Lanes<'a, 'r> {
    run: &'a Run<'r>,
    fresh: &'a FreshNamespaces,
    names: &'a [String],
    stop: &'a CancellationToken,
    queue: Mutex<Queue>,
    base_deleted: AtomicBool,
    deletions: Mutex<Vec<JoinHandle<()>>>,
    started: Instant,
}

/// One scenario a lane ran: when, from the run's start, in seconds.
struct Ran {
    index: usize,
    lane: usize,
    from_s: f64,
    to_s: f64,
    report: ScenarioReport,
}

impl Lanes<'_, '_> {
    /// Starts preparing the next scenario of the queue, if any.
    fn prepare_next(&self, queue: &mut Queue) {
        if let Some(index) = queue.pending.pop_front() {
            let name = &self.names[index];
            let profile = self.run.config.profile(self.run.handover.backend);
            let hpa = self
                .run
                .config
                .scenario(name)
                .map(|s| s.on(profile).hpa)
                .unwrap_or_default();
            let preparing = self.fresh.prepare(index, name, &hpa);
            queue.preparing.push_back((index, preparing));
        }
    }

    /// The next scenario, its namespace being prepared; the one after it starts
    /// being prepared in its place.
    fn take(&self) -> Option<(usize, JoinHandle<Result<ReadyNamespace, String>>)> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let next = queue.preparing.pop_front()?;
        self.prepare_next(&mut queue);
        Some(next)
    }

    fn delete(&self, target: &cluster::Target) {
        let deletion = self.fresh.delete(target);
        self.deletions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(deletion);
    }

    /// Setup's namespace proved the image runs and metrics flow; the scenarios do
    /// not use it, and its node port is the pool's.
    fn delete_base_once(&self) {
        if !self.base_deleted.swap(true, Ordering::SeqCst) {
            self.delete(self.fresh.base());
        }
    }

    fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Lane `lane` (from 1): scenarios from the queue until it is empty or the run
    /// is stopped.
    async fn lane(&self, lane: usize) -> Vec<Ran> {
        let mut ran = Vec::new();
        while !self.stop.is_cancelled() {
            let Some((index, preparing)) = self.take() else {
                break;
            };
            let name = &self.names[index];
            tracing::info!(
                "=== scenario {name} ({}, lane {lane}) ===",
                self.run.handover.backend
            );
            let own = self.fresh.target_for(index, name);
            let waiting = Instant::now();
            let abort = preparing.abort_handle();
            let done = tokio::select! {
                done = preparing => Some(done),
                _ = self.stop.cancelled() => None,
            };
            let waited_s = waiting.elapsed().as_secs_f64();
            let from_s = self.seconds();
            let Some(done) = done else {
                // Ctrl-C while waiting: no scenario runs; its namespace goes.
                abort.abort();
                self.delete(&own);
                let error = GateError::Interrupted(
                    "Ctrl-C or SIGTERM while its namespace was being prepared".into(),
                );
                ran.push(Ran {
                    index,
                    lane,
                    from_s,
                    to_s: from_s,
                    report: ScenarioReport::failed(name, waited_s, (&error).into()),
                });
                break;
            };
            let ready =
                done.unwrap_or_else(|e| Err(format!("preparing the namespace failed: {e}")));
            let mut report = match ready {
                Err(why) => ScenarioReport::failed(name, waited_s, (&GateError::Setup(why)).into()),
                Ok(ready) => {
                    self.delete_base_once();
                    in_own_namespace(self.run, self.fresh, &ready, name, waited_s, self.stop).await
                }
            };
            let to_s = self.seconds();
            annotate(self.run, &mut report, Some(&own)).await;
            self.delete(&own);
            let interrupted = was_interrupted(&report);
            ran.push(Ran {
                index,
                lane,
                from_s,
                to_s,
                report,
            });
            if interrupted {
                tracing::warn!("interrupted: lane {lane} skips its remaining scenarios");
                break;
            }
        }
        ran
    }
}

/// The scenarios in `plan.lanes` lanes, each in a fresh namespace.
async fn in_lanes(
    run: &Run<'_>,
    fresh: &FreshNamespaces,
    names: &[String],
    plan: &LanePlan,
    stop: &CancellationToken,
) -> Vec<ScenarioReport> {
    let lanes = Lanes {
        run,
        fresh,
        names,
        stop,
        queue: Mutex::new(Queue {
            pending: plan
                .queue
                .iter()
                .copied()
                .filter(|&i| i < names.len())
                .collect(),
            preparing: VecDeque::new(),
        }),
        base_deleted: AtomicBool::new(false),
        deletions: Mutex::new(Vec::new()),
        started: Instant::now(),
    };
    {
        let mut queue = lanes.queue.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..plan.lanes.max(1) {
            lanes.prepare_next(&mut queue);
        }
    }
    let mut ran: Vec<Ran> =
        futures::future::join_all((1..=plan.lanes.max(1)).map(|lane| lanes.lane(lane)))
            .await
            .into_iter()
            .flatten()
            .collect();
    // Namespaces prepared for scenarios that will not run (interrupted).
    let left: Vec<_> = {
        let mut queue = lanes.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.preparing.drain(..).collect()
    };
    for (index, preparing) in left {
        preparing.abort();
        let _ = preparing.await;
        lanes.delete(&fresh.target_for(index, &names[index]));
    }
    lanes.delete_base_once();
    let deletions = std::mem::take(&mut *lanes.deletions.lock().unwrap_or_else(|p| p.into_inner()));
    for deletion in deletions {
        if tokio::time::timeout(DELETE_WAIT, deletion).await.is_err() {
            tracing::warn!("a namespace deletion did not finish within {DELETE_WAIT:?}");
        }
    }
    beside_each_other(&mut ran);
    ran.sort_by_key(|r| r.index);
    ran.into_iter().map(|r| r.report).collect()
}

/// Fills each report's lane: its number and the other lanes' scenarios whose runs
/// overlapped it.
fn beside_each_other(ran: &mut [Ran]) {
    let mut by_start: Vec<(usize, f64, f64, String)> = ran
        .iter()
        .map(|r| (r.lane, r.from_s, r.to_s, r.report.name.clone()))
        .collect();
    by_start.sort_by(|a, b| a.1.total_cmp(&b.1));
    for r in ran.iter_mut() {
        let beside = by_start
            .iter()
            .filter(|(lane, from, to, _)| *lane != r.lane && *from < r.to_s && r.from_s < *to)
            .map(|(.., name)| name.clone())
            .collect();
        r.report.lane = Some(LaneReport {
            lane: r.lane,
            beside,
        });
    }
}

fn was_interrupted(report: &ScenarioReport) -> bool {
    report
        .error
        .as_ref()
        .is_some_and(|e| e.kind == "interrupted")
}

/// Where the simulated cluster's loops stood at the load's start, and, for a failed
/// scenario, the diagnostics of its namespace (`own`, else the shared one) before
/// it goes.
async fn annotate(run: &Run<'_>, report: &mut ScenarioReport, own: Option<&cluster::Target>) {
    let namespace = own.map_or(run.namespace, |t| t.namespace.as_str());
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
        run.backend
            .write_diagnostics(&run.out.join("diagnostics").join(&report.name), own)
            .await;
    }
}

/// Runs scenario `name` in `ready`, its own namespace.
async fn in_own_namespace(
    run: &Run<'_>,
    fresh: &FreshNamespaces,
    ready: &ReadyNamespace,
    name: &str,
    waited_s: f64,
    stop: &CancellationToken,
) -> ScenarioReport {
    let handover = Handover {
        target: ready.target(fresh.template()),
        fresh_namespace: true,
        ..run.handover.clone()
    };
    let mut report = match handover.write_to(&Handover::path_for(run.out, name)) {
        Err(e) => ScenarioReport::failed(name, 0.0, (&GateError::Setup(e.to_string())).into()),
        Ok(path) => run_one(run.tests, &path, run.options, run.out, name, stop).await,
    };
    report.namespace = Some(NamespaceReport {
        name: ready.prepared.target.namespace.clone(),
        node_port: ready.node_port,
        prepare_s: ready.report.took.as_secs_f64(),
        waited_s,
    });
    report
}
