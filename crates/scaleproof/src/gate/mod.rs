//! The gate: one run of `scaleproof stress`, from the config to the exit code.
//!
//! Two processes take part. The orchestrator ([`run`], in `scaleproof stress`)
//! validates the config, prepares the backend ([`crate::backend`]), writes the
//! [`handover`] and runs each scenario's integration test (`tests/`, one test per
//! scenario of `stress.toml`); then it compares, writes the artifacts and tears down.
//! Each scenario test calls [`run_scenario`]: a [`session`] on the prepared backend
//! gives the load its targets and records the autoscaler's timeline, the load engine
//! measures, [`crate::verdict`] judges, and the test writes its
//! [`ScenarioReport`] to `<out>/scenarios/<name>.json` for the orchestrator.
//!
//! Data flows one way: scenario → load + timeline → verdicts → reports.

pub mod handover;
pub mod lanes;
pub mod run;
pub mod scenario_tests;
mod sequence;
pub mod session;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::backend::BackendKind;
use crate::manifests::Manifests;
use crate::report::{
    Bounds, LoadReport, ScenarioError, ScenarioReport, TimelineReport, VerdictReport,
};
use crate::scenario::{ConfigError, DemandDrop, Expectation, Scenario, StressConfig};
use crate::verdict::{self, ReplicaBounds};
use handover::{Handover, HandoverError};

/// Why a scenario could not be run or judged. Serialized as `{kind, message}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum GateError {
    /// Ctrl-C or SIGTERM stopped the scenario (it still cleaned up and reported).
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// The backend could not give the scenario its starting state (replicas did not
    /// start, the reset failed, the hand-over was unusable).
    #[error("setup: {0}")]
    Setup(String),
    /// The load engine could not run.
    #[error("load: {0}")]
    Load(String),
    /// The Kubernetes API failed during the scenario.
    #[error("cluster: {0}")]
    Cluster(String),
}

impl GateError {
    /// `interrupted`, `setup`, `load` or `cluster`.
    pub fn kind(&self) -> &'static str {
        match self {
            GateError::Interrupted(_) => "interrupted",
            GateError::Setup(_) => "setup",
            GateError::Load(_) => "load",
            GateError::Cluster(_) => "cluster",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            GateError::Interrupted(m)
            | GateError::Setup(m)
            | GateError::Load(m)
            | GateError::Cluster(m) => m,
        }
    }
}

/// The async runtime of the gate, the same in the orchestrator, `calibrate` and the
/// scenario tests: two workers, so the load engine and the observer never wait for
/// each other on this 2-core class of machine.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// The error as `report.json` records it.
impl From<&GateError> for ScenarioError {
    fn from(error: &GateError) -> Self {
        ScenarioError {
            kind: error.kind().to_string(),
            message: error.message().to_string(),
        }
    }
}

/// A scenario test's view of the run: the hand-over, with the config and manifests
/// it names read and validated.
#[derive(Debug, Clone)]
pub struct ScenarioContext {
    pub handover: Handover,
    pub config: StressConfig,
    pub manifests: Manifests,
}

/// Why a scenario test could not even start.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(transparent)]
    Handover(#[from] HandoverError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    Manifests {
        path: PathBuf,
        #[source]
        source: Box<crate::manifests::ManifestError>,
    },
}

impl ScenarioContext {
    /// Reads the config and manifests the hand-over names, `--set` overrides applied.
    pub fn new(handover: Handover) -> Result<Self, ContextError> {
        let config = read_config(&handover.config, &handover.sets)?;
        let dir = config.manifests_dir();
        let manifests = Manifests::load(&dir).map_err(|source| ContextError::Manifests {
            path: dir,
            source: Box::new(source),
        })?;
        config.check_against(&manifests)?;
        Ok(ScenarioContext {
            handover,
            config,
            manifests,
        })
    }

    pub fn backend(&self) -> BackendKind {
        self.handover.backend
    }

    /// The HPA's replica bounds for `scenario`, after its overrides (checked when the
    /// config was loaded, so the fallback never shows).
    pub fn bounds(&self, scenario: &Scenario) -> ReplicaBounds {
        let (min, max) =
            crate::scenario::replica_bounds(scenario, &self.manifests).unwrap_or((1, 1));
        ReplicaBounds { min, max }
    }
}

/// The stress config at `path` with `sets` applied (as `--set` does).
pub fn read_config(path: &Path, sets: &[String]) -> Result<StressConfig, ConfigError> {
    let mut config = StressConfig::load(path)?;
    for assignment in sets {
        config.apply_set(assignment)?;
    }
    Ok(config)
}

/// Where a scenario's report goes, for the orchestrator to collect.
pub fn scenario_report_path(out_dir: &Path, name: &str) -> PathBuf {
    out_dir.join("scenarios").join(format!("{name}.json"))
}

/// Writes a scenario's report where the orchestrator collects it.
pub fn write_scenario_report(out_dir: &Path, report: &ScenarioReport) -> std::io::Result<PathBuf> {
    let path = scenario_report_path(out_dir, &report.name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(&path, json)?;
    Ok(path)
}

/// Reads what [`write_scenario_report`] wrote.
pub fn read_scenario_report(path: &Path) -> std::io::Result<ScenarioReport> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Runs `scenario` on the prepared backend and judges it. Infrastructure failures
/// are reported in [`ScenarioReport::error`], never panics.
pub async fn run_scenario(
    ctx: &ScenarioContext,
    scenario: &Scenario,
    cancel: CancellationToken,
) -> ScenarioReport {
    let started = Instant::now();
    // The scenario with this run's numbers (`[scenario.backend.*]`).
    let scenario = &scenario.on(ctx.handover.profile);
    let bounds = ctx.bounds(scenario);
    let load_config = ctx.config.load_config(scenario, ctx.backend());
    let mut error = None;
    let mut reset_s = None;
    let mut load_started_at = None;
    let (load, timeline) = match session::Session::open(ctx, scenario).await {
        Err(e) => {
            error = Some(e);
            (None, Default::default())
        }
        Ok(mut session) => {
            reset_s = session.reset_s();
            let zero = Instant::now();
            load_started_at = Some(crate::report::rfc3339_millis(std::time::SystemTime::now()));
            session.start(zero);
            let result = scaleproof_load::run(&load_config, &session.targets(), &cancel).await;
            observe_for(scenario.observe_after_s, &cancel).await;
            let timeline = session.finish().await;
            match result {
                Ok(load) => (Some(load), timeline),
                Err(e) => {
                    error = Some(GateError::Load(e.to_string()));
                    (None, timeline)
                }
            }
        }
    };
    if cancel.is_cancelled() && error.is_none() {
        error = Some(GateError::Interrupted(
            "Ctrl-C or SIGTERM stopped the scenario; it cleaned up and reports what it saw".into(),
        ));
    }
    let verdicts = match &load {
        Some(load) => verdict::judge(&scenario.expect, load, &timeline, bounds),
        None => Vec::new(),
    };
    // From the demand drop a scale-down is judged from (the load's end unless the
    // scenario names a stage), when the scenario scaled up at all.
    let back_to_min_s = load.as_ref().and_then(|l| {
        let from_s = scenario
            .expect
            .iter()
            .find_map(|e| match e {
                Expectation::ScaleDownWithinS {
                    from: DemandDrop::Stage { at_s, .. },
                    ..
                } => Some(*at_s),
                _ => None,
            })
            .unwrap_or(l.duration_s);
        (timeline.peak_ready_replicas() > bounds.min)
            .then(|| timeline.back_to_min_s(bounds.min, from_s))
            .flatten()
    });
    ScenarioReport {
        name: scenario.name.clone(),
        description: scenario.description.clone(),
        bounds: Bounds::from(bounds),
        duration_s: started.elapsed().as_secs_f64(),
        reset_s,
        namespace: None,
        lane: None,
        hpa: scenario
            .hpa
            .apply_to(&ctx.manifests.hpa)
            .ok()
            .and_then(|h| h.spec)
            .and_then(|spec| serde_json::to_value(spec).ok()),
        load: load.as_ref().map(|l| {
            let mut report = LoadReport::from(l);
            if let Some(named) = &scenario.stages {
                for (stage, name) in report.stages.iter_mut().zip(&named.names) {
                    stage.name = name.clone();
                }
            }
            report
        }),
        first_scale_up_s: timeline.first_scale_up_s(),
        back_to_min_s,
        load_started_at,
        // The orchestrator, which runs the simulated cluster, fills these in.
        phases: None,
        timeline: TimelineReport::from(&timeline),
        verdicts: verdicts.iter().map(VerdictReport::from).collect(),
        error: error.as_ref().map(ScenarioError::from),
    }
}

/// Sleeps `seconds` unless cancelled first.
async fn observe_for(seconds: f64, cancel: &CancellationToken) {
    if seconds > 0.0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(seconds)) => {}
            _ = cancel.cancelled() => {}
        }
    }
}
