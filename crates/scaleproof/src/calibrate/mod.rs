//! `scaleproof calibrate`: measure one pod's capacity at its CPU limit on the
//! selected backend and derive the scenario numbers that follow from it.
//!
//! Method: the user's config, its scenarios replaced by one open-loop staircase
//! against a single pod (the HPA pinned at 1), runs through the gate itself, so the
//! pod is set up, capped and measured exactly as in a stress run. The staircase's
//! load timeline then gives each step's completed rate and latency
//! ([`capacity::measure`]); [`derive::propose`] turns the capacity, the HPA and the
//! backend's detection chain into scenarios, each with its arithmetic. Beside the
//! staircase, in a second lane, one more pinned pod runs under a closed loop; its
//! throughput in the saturated steps' seconds cross-checks the capacity
//! ([`reference::compare`]).

pub mod capacity;
pub mod derive;
pub mod reference;
pub mod staircase;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backend::BackendKind;
use crate::gate::lanes::Lanes;
use crate::gate::run::{self, StressOptions};
use crate::manifests::Manifests;
use crate::report::{Report, ScenarioReport};
use crate::scenario::StressConfig;
use scaleproof_sim::TimingPreset;

use capacity::{Capacity, FollowRule};
use derive::{Chain, Hpa, Pod, Proposal};
use reference::Reference;
use staircase::Staircase;

/// What to calibrate, and how.
#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    /// The gate's options: backend, config (the user's), out, url, cluster; the
    /// scenarios, sets and baseline are the calibration's own.
    pub stress: StressOptions,
    pub staircase: Staircase,
    pub rule: FollowRule,
    /// Run the closed-loop reference pod beside the staircase.
    pub reference: bool,
    /// Write the user's config with the proposed scenarios here.
    pub write: Option<PathBuf>,
}

/// Why calibration could not give a capacity.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Staircase(#[from] staircase::StaircaseError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the calibration run did not measure the pod: {0} (its reports are in {1})")]
    Run(String, PathBuf),
    #[error("{0} (the staircase's reports are in {1})")]
    Capacity(capacity::CapacityError, PathBuf),
}

/// What calibration measured and proposes.
#[derive(Debug, Clone)]
pub struct Calibration {
    pub backend: BackendKind,
    pub capacity: Capacity,
    pub pod: Pod,
    pub hpa: Hpa,
    pub chain: Chain,
    pub proposals: Vec<Proposal>,
    /// The cross-check, when asked for: the comparison, or why there is none.
    pub reference: Option<Result<Reference, String>>,
    /// The staircase's gate run (report.json, summary.md, timeline.svg).
    pub run_dir: PathBuf,
    pub written: Option<PathBuf>,
}

/// `calibration.json`: the figures, for scripts (CI compares the capacity with a
/// stress run's throughput of one capped pod).
#[derive(Debug, Serialize)]
struct CalibrationJson<'a> {
    backend: BackendKind,
    capacity_per_s: f64,
    saturated_steps: usize,
    knee_rate_per_s: f64,
    baseline_p50_ms: f64,
    cpu_request_millicores: u64,
    cpu_limit_millicores: u64,
    cpu_ms_per_request: f64,
    rate_at_target_per_s: f64,
    steps: Vec<StepJson>,
    detection_chain_s: f64,
    proposals: Vec<ProposalJson<'a>>,
    /// Null when `--no-reference`.
    reference: Option<ReferenceJson>,
}

#[derive(Debug, Serialize)]
struct ReferenceJson {
    /// The reference pod's median rate over the saturated steps; null when the
    /// two were not measured in the same seconds (`error` says why).
    per_s: Option<f64>,
    /// `capacity_per_s / per_s`.
    ratio: Option<f64>,
    offset_s: Option<f64>,
    uncovered_steps: Option<usize>,
    steps: Vec<ComparedStepJson>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct ComparedStepJson {
    rate_per_s: f64,
    staircase_per_s: f64,
    reference_per_s: f64,
}

#[derive(Debug, Serialize)]
struct StepJson {
    rate_per_s: f64,
    completed_per_s: f64,
    p50_ms: Option<f64>,
    follows: bool,
}

#[derive(Debug, Serialize)]
struct ProposalJson<'a> {
    scenario: &'a toml::Table,
    arithmetic: &'a [String],
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CalibrateError + '_ {
    move |source| CalibrateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The user's pod and HPA, from the config's manifests.
fn read_target(config_path: &Path) -> Result<(String, Hpa, u64, u64), CalibrateError> {
    let text = std::fs::read_to_string(config_path).map_err(io(config_path))?;
    let config = StressConfig::parse(config_path, &text)
        .map_err(|e| CalibrateError::Input(e.to_string()))?;
    let dir = config.manifests_dir();
    let manifests = Manifests::load(&dir)
        .map_err(|e| CalibrateError::Input(format!("{}: {e}", dir.display())))?;
    let workload = manifests
        .workload()
        .map_err(|e| CalibrateError::Input(format!("{}: {e}", dir.display())))?;
    let spec = manifests.hpa.spec.clone().unwrap_or_default();
    let target_pct = crate::manifests::cpu_utilization_target(&manifests.hpa).ok_or_else(|| {
        CalibrateError::Input(format!(
            "{}: the HPA has no CPU utilization target; calibrate derives scenarios for one",
            dir.display()
        ))
    })?;
    let hpa = Hpa {
        target_pct: u32::try_from(target_pct).unwrap_or(0),
        min_replicas: u32::try_from(spec.min_replicas.unwrap_or(1)).unwrap_or(1),
        max_replicas: u32::try_from(spec.max_replicas).unwrap_or(1),
    };
    Ok((
        text,
        hpa,
        workload.cpu_request_millicores,
        workload.cpu_limit_millicores,
    ))
}

/// The detection chain of the backend the run used.
fn chain_of(report: &Report) -> Chain {
    match report.run.backend {
        Some(BackendKind::Kind) => Chain::kind(),
        Some(BackendKind::Cluster) => Chain::cluster(),
        _ => match report.run.local_timing.as_ref().map(|t| t.preset) {
            Some(TimingPreset::Kind) => Chain::kind(),
            _ => Chain::local_fast(),
        },
    }
}

/// Runs the staircase through the gate and derives the scenarios.
pub async fn calibrate(options: &CalibrateOptions) -> Result<Calibration, CalibrateError> {
    options.staircase.check()?;
    let root = &options.stress.root;
    let user_config = root.join(&options.stress.config);
    let (text, hpa, cpu_request_m, cpu_limit_m) = read_target(&user_config)?;
    let out = root.join(&options.stress.out);
    std::fs::create_dir_all(&out).map_err(io(&out))?;
    let calibration_config = out.join("calibrate.toml");
    let mut scenarios = vec![options.staircase.scenario()];
    if options.reference {
        scenarios.push(reference::scenario(&options.staircase));
    }
    let generated = staircase::config_with(&user_config, &text, scenarios)?;
    std::fs::write(&calibration_config, generated).map_err(io(&calibration_config))?;

    let run_dir = out.join("run");
    let stress = StressOptions {
        config: calibration_config,
        out: run_dir.clone(),
        // Backend settings only (`backend.local.timing=kind`): the user's
        // expectations name scenarios the calibration config does not have.
        sets: options
            .stress
            .sets
            .iter()
            .filter(|s| s.starts_with("backend."))
            .cloned()
            .collect(),
        scenarios: Vec::new(),
        baseline: None,
        baseline_margin: None,
        // The reference must run in the staircase's seconds, so in its own lane.
        lanes: Lanes::Exactly(if options.reference { 2 } else { 1 }),
        ..options.stress.clone()
    };
    let report = run::run(&stress).await;
    let failed = |why: String| CalibrateError::Run(why, run_dir.clone());
    if let Some(step) = report.setup.iter().find(|s| !s.passed()) {
        return Err(failed(format!(
            "setup step {:?} failed: {}",
            step.name,
            step.message.clone().unwrap_or_default()
        )));
    }
    if report
        .run
        .cpu_limit
        .as_deref()
        .is_some_and(|l| l.starts_with("UNCAPPED"))
    {
        return Err(failed(
            "the pod ran without its CPU limit (no cgroup permission: run as root), so its \
             throughput says nothing about its capacity under the limit"
                .into(),
        ));
    }
    let scenario = report
        .scenarios
        .iter()
        .find(|s| s.name == staircase::SCENARIO)
        .ok_or_else(|| failed("the staircase scenario did not run".into()))?;
    if let Some(error) = &scenario.error {
        return Err(failed(format!("{}: {}", error.kind, error.message)));
    }
    let load = scenario
        .load
        .as_ref()
        .ok_or_else(|| failed("the staircase has no load result".into()))?;
    let capacity = capacity::measure(&load.stages, &load.timeline, options.rule)
        .map_err(|e| CalibrateError::Capacity(e, run_dir.clone()))?;

    let pod = Pod {
        capacity_per_s: capacity.per_s,
        cpu_request_m,
        cpu_limit_m,
    };
    let reference = options
        .reference
        .then(|| compare_reference(&report, scenario, &capacity));
    let chain = chain_of(&report);
    let proposals = derive::propose(&pod, &hpa, &chain);
    let backend = report.run.backend.unwrap_or(BackendKind::Local);

    let written = match &options.write {
        Some(path) => {
            let path = root.join(path);
            write_proposal(&path, &user_config, &text, &pod, &proposals)?;
            Some(path)
        }
        None => None,
    };
    let calibration = Calibration {
        backend,
        capacity,
        pod,
        hpa,
        chain,
        proposals,
        reference,
        run_dir,
        written,
    };
    let json_path = out.join("calibration.json");
    let json = serde_json::to_string_pretty(&to_json(&calibration))
        .map_err(|e| CalibrateError::Input(format!("calibration.json: {e}")))?;
    std::fs::write(&json_path, json).map_err(io(&json_path))?;
    Ok(calibration)
}

/// The reference scenario's run against the staircase's saturated steps.
fn compare_reference(
    report: &Report,
    staircase: &ScenarioReport,
    capacity: &Capacity,
) -> Result<Reference, String> {
    let scenario = report
        .scenarios
        .iter()
        .find(|s| s.name == reference::SCENARIO)
        .ok_or("the reference scenario did not run")?;
    if let Some(error) = &scenario.error {
        return Err(format!(
            "the reference scenario failed: {}: {}",
            error.kind, error.message
        ));
    }
    let load = scenario
        .load
        .as_ref()
        .ok_or("the reference scenario has no load result")?;
    let started = |s: &ScenarioReport| {
        s.load_started_at
            .as_deref()
            .and_then(crate::report::parse_rfc3339)
            .ok_or_else(|| format!("{} has no load start time", s.name))
    };
    let (ours, theirs) = (started(staircase)?, started(scenario)?);
    let offset_s = match theirs.duration_since(ours) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    };
    reference::compare(capacity, offset_s, load.duration_s, &load.timeline)
        .map_err(|e| e.to_string())
}

fn reference_json(outcome: &Result<Reference, String>) -> ReferenceJson {
    match outcome {
        Ok(r) => ReferenceJson {
            per_s: Some(r.per_s),
            ratio: Some(r.ratio),
            offset_s: Some(r.offset_s),
            uncovered_steps: Some(r.uncovered_steps),
            steps: r
                .steps
                .iter()
                .map(|s| ComparedStepJson {
                    rate_per_s: s.rate,
                    staircase_per_s: s.staircase_per_s,
                    reference_per_s: s.reference_per_s,
                })
                .collect(),
            error: None,
        },
        Err(why) => ReferenceJson {
            per_s: None,
            ratio: None,
            offset_s: None,
            uncovered_steps: None,
            steps: Vec::new(),
            error: Some(why.clone()),
        },
    }
}

fn to_json(c: &Calibration) -> CalibrationJson<'_> {
    CalibrationJson {
        backend: c.backend,
        capacity_per_s: c.capacity.per_s,
        saturated_steps: c.capacity.saturated_steps,
        knee_rate_per_s: c.capacity.knee_rate,
        baseline_p50_ms: c.capacity.baseline_p50_ms,
        cpu_request_millicores: c.pod.cpu_request_m,
        cpu_limit_millicores: c.pod.cpu_limit_m,
        cpu_ms_per_request: c.pod.cpu_limit_m as f64 / c.pod.capacity_per_s,
        rate_at_target_per_s: derive::rate_at_target(&c.pod, &c.hpa),
        steps: c
            .capacity
            .steps
            .iter()
            .map(|s| StepJson {
                rate_per_s: s.rate,
                completed_per_s: s.completed_per_s,
                p50_ms: s.p50_ms,
                follows: s.follows,
            })
            .collect(),
        detection_chain_s: c.chain.worst_s,
        proposals: c
            .proposals
            .iter()
            .map(|p| ProposalJson {
                scenario: &p.scenario,
                arithmetic: &p.arithmetic,
            })
            .collect(),
        reference: c.reference.as_ref().map(reference_json),
    }
}

/// The user's config with the proposed scenarios, its arithmetic as comments on top.
fn write_proposal(
    path: &Path,
    user_config: &Path,
    text: &str,
    pod: &Pod,
    proposals: &[Proposal],
) -> Result<(), CalibrateError> {
    let body = staircase::config_with(
        user_config,
        text,
        proposals.iter().map(|p| p.scenario.clone()).collect(),
    )?;
    let mut out = format!(
        "# Written by `scaleproof calibrate` from {} (one pod: {:.1} req/s at its {}m CPU limit).\n\
         # Relative paths of the original are absolute here. How each number was reached:\n",
        user_config.display(),
        pod.capacity_per_s,
        pod.cpu_limit_m
    );
    for p in proposals {
        let name = p.scenario["name"].as_str().unwrap_or("?");
        out.push_str(&format!("#\n# {name}:\n"));
        for line in &p.arithmetic {
            out.push_str(&format!("#   {line}\n"));
        }
    }
    out.push('\n');
    out.push_str(&body);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(path, out).map_err(io(path))
}
