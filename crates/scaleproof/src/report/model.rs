//! The types of `report.json`, and their conversion from the harness's own types.
//!
//! They are the published format: `docs/report-schema.md` and
//! `docs/report.schema.json` are generated from them (their doc comments are the
//! field descriptions), and a test fails when either is out of date. The internal
//! types (`LoadResult`, `Timeline`, `Verdict`) can change freely; a change here
//! changes what machines read, so it bumps [`super::SCHEMA_VERSION`] when a field
//! changes meaning or disappears. Every field carries its unit in its name (`_ms`,
//! `_s`, `_per_s`, `_pct`, `_millicores`); rates are fractions between 0 and 1.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backend::{BackendKind, StepRecord};
use crate::timeline::{Condition, MetricSample, ReplicaUsage, ScaleEvent, ScaleSample, Timeline};
use crate::verdict::{self, ReplicaBounds, Verdict};
use scaleproof_load::{
    ErrorCounts, LatencySummary, LoadMode, LoadResult, Promised, SecondStats, Shortfall,
};

/// A whole `cargo xtask stress` run: what was set up, what each scenario sent and
/// measured, what the autoscaler did, and how every expectation was judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// The version of this format (see Compatibility above).
    pub schema_version: u32,
    /// Where and when the run happened.
    pub run: RunMeta,
    /// Infrastructure steps (build, cluster, metrics-server, image, deploy), in order.
    pub setup: Vec<SetupStep>,
    /// The scenarios, in the order they ran.
    pub scenarios: Vec<ScenarioReport>,
    /// Cross-scenario checks (`[[compare]]` in stress.toml, e.g. the scaling gain).
    #[serde(default)]
    pub comparisons: Vec<VerdictReport>,
    /// Checks against a previous run (`--baseline`); empty without it, and when the
    /// baseline was missing or not comparable (see `against_baseline.note`).
    #[serde(default)]
    pub baseline: Vec<VerdictReport>,
    /// This run's figures next to the baseline's (`--baseline`); null without it.
    #[serde(default)]
    pub against_baseline: Option<BaselineComparison>,
}

/// This run next to a previous one (in the PR workflow: main's newest run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BaselineComparison {
    /// The baseline report as given to `--baseline`.
    pub path: String,
    /// The baseline run's commit, when its report could be read.
    pub git_sha: Option<String>,
    /// When the baseline run started (RFC 3339), when its report could be read.
    pub started_at: Option<String>,
    /// Why nothing was compared (no such file, unreadable, another backend or other
    /// pod limits). A missing or incomparable baseline is noted, never a failure.
    pub note: Option<String>,
    /// The allowed regressions of `[baseline]` in stress.toml (a scenario may have its
    /// own: see each scenario's `margins`).
    pub margins: BaselineMarginsReport,
    /// Per scenario of this run, in run order.
    pub scenarios: Vec<ScenarioDelta>,
}

/// `[baseline]`: how much worse than the baseline a metric may get.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BaselineMarginsReport {
    /// p95 may rise by this fraction...
    pub p95: f64,
    /// ...plus this many milliseconds (a p95 of a few ms is mostly scheduling noise).
    pub p95_slack_ms: f64,
    /// Throughput may fall by this fraction.
    pub throughput: f64,
    /// The time to the first scale-up may grow by this fraction...
    pub first_scale_up: f64,
    /// ...plus this many HPA sync periods (the same load can cross the target one
    /// sync later)...
    pub first_scale_up_slack_syncs: f64,
    /// ...plus this many metrics scrape periods (the load is seen a scrape and a
    /// kubelet housekeeping earlier or later)...
    #[serde(default)]
    pub first_scale_up_slack_scrapes: f64,
    /// ...which with this run's sync and scrape periods is this many seconds.
    pub first_scale_up_slack_s: f64,
}

/// One scenario's figures now and in the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioDelta {
    pub name: String,
    /// Successful requests per second.
    pub throughput_per_s: Delta,
    /// p95 latency of all requests.
    pub p95_ms: Delta,
    /// Time from the load's start to the first scale-up (null: none).
    pub first_scale_up_s: Delta,
    /// Why this scenario was not compared (e.g. not in the baseline); null when it was.
    pub note: Option<String>,
    /// The margins its checks used: `[baseline]`, or the scenario's own
    /// `[scenario.baseline]` where its figures are noisier.
    pub margins: BaselineMarginsReport,
}

/// A figure in this run and in the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Delta {
    pub now: Option<f64>,
    pub baseline: Option<f64>,
    /// `(now / baseline - 1) * 100`, when both exist and the baseline is not 0.
    pub change_pct: Option<f64>,
}

impl Delta {
    pub fn new(now: Option<f64>, baseline: Option<f64>) -> Self {
        let change_pct = match (now, baseline) {
            (Some(a), Some(b)) if b != 0.0 => Some((a / b - 1.0) * 100.0),
            _ => None,
        };
        Delta {
            now,
            baseline,
            change_pct,
        }
    }
}

/// Where and when the run happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunMeta {
    /// `local`, `kind` or `cluster`; null when the run ended before a backend was
    /// chosen (an invalid config, no backend usable).
    pub backend: Option<BackendKind>,
    /// Commit of the checkout (with `-dirty` when tracked files had changes).
    pub git_sha: Option<String>,
    /// When the run started, RFC 3339, UTC.
    pub started_at: String,
    /// When the run ended, RFC 3339, UTC.
    pub ended_at: String,
    /// Path of the stress config.
    pub config: String,
    /// Tool name to version string (`scaleproof`, `rustc`, `kind`, `kubectl`, ...).
    pub tool_versions: BTreeMap<String, String>,
    /// How replica CPU was limited (local backend), e.g. `cgroup v1 cpu.cfs_quota_us
    /// under /sys/fs/cgroup/cpu`; starts with `UNCAPPED` when it was not.
    pub cpu_limit: Option<String>,
    /// How replica memory was limited and measured (local backend), e.g. `cgroup v1
    /// memory.limit_in_bytes under ...`; starts with `UNLIMITED` when it was not.
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// How the local backend gave pods their network, e.g. `a network namespace per
    /// pod, ...; container args as written`; starts with `LOOPBACK` when every pod
    /// shared the host's loopback with its `--host`/`--port` rewritten. Null on kind
    /// and on a cluster.
    #[serde(default)]
    pub pod_network: Option<String>,
    /// The local backend's simulated control plane: its timing preset and every
    /// knob; null on kind and on an existing cluster.
    #[serde(default)]
    pub local_timing: Option<LocalTimingReport>,
    /// What one pod of the Deployment is given, from the manifests and the backend's
    /// env overrides: runs with different pods measure different things, so a
    /// baseline is only compared when this matches. Null when the run ended before
    /// the manifests were read.
    #[serde(default)]
    pub workload: Option<WorkloadReport>,
    /// The HPA controller's sync period the run assumed (kind: set by the harness
    /// and checked; cluster: the config's or the upstream default 15 s; local: the
    /// simulated one's). Null when the run ended before a backend was chosen.
    #[serde(default)]
    pub hpa_sync_period_s: Option<f64>,
    /// metrics-server's `--metric-resolution` the run assumed (kind: the harness
    /// sets 15 s; cluster: the config's `backend.cluster.metric_resolution_s`, else
    /// the 15 s of metrics-server's released manifest; local: the simulated one's).
    #[serde(default)]
    pub metric_resolution_s: Option<f64>,
    /// How many scenarios ran at once and why; null when the run ended before the
    /// scenarios.
    #[serde(default)]
    pub lanes: Option<LanesReport>,
}

/// The lane plan: how many scenarios ran side by side, from the node's CPU and the
/// pods' CPU limits (see `--lanes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LanesReport {
    /// How many lanes ran (1: one scenario at a time).
    pub lanes: usize,
    /// Why that many, with the figures.
    pub reason: String,
    /// What one lane may hold at once: the largest scenario's pods at maxReplicas
    /// plus the largest namespace prepared ahead at minReplicas, by CPU limits. Null
    /// when lanes were not planned against a node (one shared namespace).
    pub lane_cpu_millicores: Option<u64>,
    /// The node's allocatable CPU the plan used.
    pub node_allocatable_millicores: Option<u64>,
    /// What the node's pods had requested when the lanes were planned.
    pub node_requested_millicores: Option<u64>,
}

/// One pod of the Deployment under test, as far as it changes what is measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkloadReport {
    pub cpu_request_millicores: u64,
    pub cpu_limit_millicores: u64,
    /// The service container's env as deployed (the manifest's literal entries with
    /// the backend's overrides, e.g. the cost knob).
    pub env: BTreeMap<String, String>,
}

/// How fast the local backend's simulated control plane reacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LocalTimingReport {
    /// `fast` (a gate of minutes) or `kind` (a rehearsal of the kind gate's timing).
    pub preset: scaleproof_sim::TimingPreset,
    /// Whose `[scenario.backend.*]` numbers the scenarios ran with: `local`, or
    /// `kind` when rehearsing kind.
    pub thresholds_of: BackendKind,
    /// The HPA controller's sync period.
    pub hpa_sync_period_s: f64,
    /// metrics-server's scrape interval (`--metric-resolution`).
    pub metric_resolution_s: f64,
    /// The base interval of the kubelet's per-container CPU and memory samples
    /// (cAdvisor housekeeping); 0 when every scrape read them fresh.
    pub stats_interval_s: f64,
    /// The longest wait between two samples of a busy container (the base plus
    /// cAdvisor's jitter of up to one base more); 0 without housekeeping.
    #[serde(default)]
    pub stats_interval_busy_max_s: f64,
    /// The longest wait between two samples of an idle container (whose base
    /// doubles up to the kubelet's 15 s, then jittered); 0 without housekeeping.
    #[serde(default)]
    pub stats_interval_idle_max_s: f64,
    /// From a pod's creation to its container running: the shortest delay drawn.
    pub pod_start_s: f64,
    /// The longest delay drawn (each pod's is uniform between the two).
    #[serde(default)]
    pub pod_start_max_s: f64,
    /// The seed the random phases were drawn from (metrics-server's scrape phase,
    /// housekeeping waits, pod start delays); `--set backend.local.seed=N` repeats
    /// them. Null in reports from before seeds existed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Whether readiness probes ran on their period from the first one (as the
    /// kubelet does), rather than every 100 ms until the first success.
    pub probes_on_period: bool,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`.
    pub cpu_initialization_period_s: f64,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`.
    pub initial_readiness_delay_s: f64,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`.
    pub downscale_stabilization_s: f64,
    /// `--horizontal-pod-autoscaler-tolerance`, a fraction.
    pub tolerance: f64,
}

impl LocalTimingReport {
    pub fn new(
        timing: &scaleproof_sim::Timing,
        thresholds_of: BackendKind,
        seed: Option<u64>,
    ) -> Self {
        let c = &timing.controller;
        let h = &timing.housekeeping;
        LocalTimingReport {
            stats_interval_busy_max_s: h.longest_busy_wait().as_secs_f64(),
            stats_interval_idle_max_s: h.wait(h.max_interval, 1.0).as_secs_f64(),
            pod_start_max_s: timing.pod_start.max.as_secs_f64(),
            seed,
            preset: timing.preset,
            thresholds_of,
            hpa_sync_period_s: timing.hpa_sync_period.as_secs_f64(),
            metric_resolution_s: timing.metric_resolution.as_secs_f64(),
            stats_interval_s: h.interval.as_secs_f64(),
            pod_start_s: timing.pod_start.min.as_secs_f64(),
            probes_on_period: timing.probe_on_period,
            cpu_initialization_period_s: c.cpu_initialization_period.as_secs_f64(),
            initial_readiness_delay_s: c.initial_readiness_delay.as_secs_f64(),
            downscale_stabilization_s: c.downscale_stabilization_window.as_secs_f64(),
            tolerance: c.tolerance,
        }
    }
}

impl RunMeta {
    /// The backend's name, `none` when there was none.
    pub fn backend_name(&self) -> &'static str {
        self.backend.map_or("none", BackendKind::as_str)
    }
}

/// One infrastructure step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetupStep {
    /// What the step did, e.g. `read stress config`, `build iris-server (release)`,
    /// `kind create cluster`, `roll out metrics-server`, `compile scenario tests`.
    pub name: String,
    /// `pass`, or `error` when it failed.
    pub outcome: Outcome,
    /// Wall time of the step.
    pub duration_s: f64,
    /// The error, when it failed.
    pub message: Option<String>,
}

impl SetupStep {
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

impl From<StepRecord> for SetupStep {
    fn from(step: StepRecord) -> Self {
        SetupStep {
            name: step.name,
            outcome: if step.error.is_some() {
                Outcome::Error
            } else {
                Outcome::Pass
            },
            duration_s: step.duration_s,
            message: step.error,
        }
    }
}

/// One scenario: what was run, measured, observed and judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioReport {
    /// From stress.toml.
    pub name: String,
    /// From stress.toml.
    pub description: String,
    /// The HPA's replica bounds after the scenario's overrides.
    pub bounds: Bounds,
    /// Wall time of the whole scenario (starting replicas or the reset included).
    pub duration_s: f64,
    /// How long the reset to a fresh deploy's state took (HPA absent for two sync
    /// periods, one ready pod, its CPU below target); null when it did not happen
    /// (the scenario had a fresh namespace of its own, see `namespace`).
    #[serde(default)]
    pub reset_s: Option<f64>,
    /// The namespace of its own the scenario ran in, prepared while the scenario
    /// before it ran; null when it ran in the shared one after a reset (`--backend
    /// cluster`).
    #[serde(default)]
    pub namespace: Option<NamespaceReport>,
    /// Which lane ran the scenario and what ran beside it; null when it ran alone in
    /// the shared namespace.
    #[serde(default)]
    pub lane: Option<LaneReport>,
    /// The HPA's `spec` as applied for this scenario (autoscaling/v2, after the
    /// scenario's `[scenario.hpa]` overrides, behavior included).
    #[serde(default)]
    pub hpa: Option<serde_json::Value>,
    /// What the load engine measured; null when the scenario failed before or
    /// during load.
    pub load: Option<LoadReport>,
    /// What the autoscaler saw and did.
    pub timeline: TimelineReport,
    /// Seconds from load start to the first sample whose desired replica count
    /// exceeds the count the scenario started with; null without a scale-up.
    pub first_scale_up_s: Option<f64>,
    /// Seconds from the demand drop (the `scale_down_from` stage's start, else the
    /// load's end) until the HPA wanted `minReplicas` and exactly that many were
    /// ready; null when the scenario never scaled up or never came back.
    #[serde(default)]
    pub back_to_min_s: Option<f64>,
    /// When the load began (RFC 3339, UTC, milliseconds); null when it did not.
    #[serde(default)]
    pub load_started_at: Option<String>,
    /// Local backend: where the simulated control plane's periodic loops stood when
    /// the load began (its random phases; see `run.local_timing.seed`). Null on
    /// kind and on a cluster, where nobody can see them.
    #[serde(default)]
    pub phases: Option<PhasesReport>,
    /// Two guards (`load_delivered`, `metrics_observed`), then one per expectation;
    /// empty when the scenario could not run.
    pub verdicts: Vec<VerdictReport>,
    /// Why the scenario could not run or be judged (when its test wrote no result at
    /// all, `bounds` is `{0, 0}` and `description` empty).
    pub error: Option<ScenarioError>,
}

/// A scenario's fresh namespace: which, on which node port, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NamespaceReport {
    pub name: String,
    /// The Service's node port (one of kind's mapped pool).
    pub node_port: u16,
    /// From the first apply until one pod was ready, measured and idle.
    pub prepare_s: f64,
    /// How long the scenario waited for it: 0 when it was prepared in time, while
    /// the scenario before ran (the first scenario waits for its whole preparation).
    pub waited_s: f64,
}

/// One scenario's lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LaneReport {
    /// From 1.
    pub lane: usize,
    /// The scenarios of other lanes whose runs overlapped this one's, in the order
    /// they started.
    pub beside: Vec<String>,
}

impl ScenarioReport {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.verdicts.iter().all(VerdictReport::passed)
    }

    /// A scenario that produced no measurement, only an error.
    pub fn failed(name: &str, duration_s: f64, error: ScenarioError) -> Self {
        ScenarioReport {
            name: name.to_string(),
            description: String::new(),
            bounds: Bounds { min: 0, max: 0 },
            duration_s,
            reset_s: None,
            namespace: None,
            lane: None,
            hpa: None,
            load: None,
            timeline: TimelineReport::default(),
            first_scale_up_s: None,
            back_to_min_s: None,
            load_started_at: None,
            phases: None,
            verdicts: Vec::new(),
            error: Some(error),
        }
    }
}

/// Seconds from the load's start until each periodic loop of the simulated control
/// plane next ran: together they decide how soon the load is seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhasesReport {
    /// Until metrics-server's next scrape.
    pub next_scrape_s: Option<f64>,
    /// Until the HPA's next sync (its first comes one sync period after the reset
    /// applied it).
    pub next_hpa_sync_s: Option<f64>,
    /// Until the next housekeeping (CPU sample) of each pod running at the start,
    /// by pod name.
    pub next_housekeeping_s: BTreeMap<String, f64>,
}

impl PhasesReport {
    /// The phases of `namespace`'s loops, the HPA named `hpa` among them.
    pub fn new(phases: &scaleproof_sim::Phases, namespace: &str, hpa: &str) -> Self {
        let prefix = format!("{namespace}/");
        PhasesReport {
            next_scrape_s: phases.next_scrape_s,
            next_hpa_sync_s: phases
                .next_hpa_sync_s
                .get(&format!("{namespace}/{hpa}"))
                .copied(),
            next_housekeeping_s: phases
                .next_housekeeping_s
                .iter()
                .filter_map(|(pod, s)| pod.strip_prefix(&prefix).map(|p| (p.to_string(), *s)))
                .collect(),
        }
    }
}

/// The HPA's `minReplicas` and `maxReplicas` for a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

/// Why a scenario could not run or be judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioError {
    /// `interrupted` (Ctrl-C or SIGTERM), `setup` (the backend could not give the
    /// scenario its starting state), `load` (the load engine could not run) or
    /// `cluster` (the Kubernetes API failed during the scenario).
    pub kind: String,
    /// What happened, for people.
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// What the load engine measured (`scaleproof load --json` prints the same object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoadReport {
    /// `closed`: workers wait for responses; `open`: arrivals on a schedule.
    pub mode: LoadModeReport,
    /// What was asked of the engine.
    pub promised: PromisedReport,
    /// Stopped early (Ctrl-C).
    pub cancelled: bool,
    /// Requests that ended, with a response or an error; `sent = ok + failed`.
    pub sent: u64,
    /// 2xx responses.
    pub ok: u64,
    /// Non-2xx responses plus requests without a response.
    pub failed: u64,
    /// HTTP status (as a string key) to count.
    pub status_counts: BTreeMap<String, u64>,
    /// Requests without a response, by cause.
    pub errors: ErrorCountsReport,
    /// `ok / sent`.
    pub success_rate: f64,
    /// `sent / duration_s`.
    pub throughput_per_s: f64,
    /// From the first send until the last request ended.
    pub duration_s: f64,
    /// Open loop: requests sent late because the schedule could not be kept.
    pub late: u64,
    /// Open loop: requests never sent because the schedule could not be kept.
    pub dropped: u64,
    /// Latency from the intended send time (coordinated-omission corrected; equals
    /// `service_time_ms` in a closed loop); null when nothing was timed.
    pub latency_ms: Option<LatencyReport>,
    /// Latency from the actual send; null when nothing was timed.
    pub service_time_ms: Option<LatencyReport>,
    /// One entry per second of the run.
    pub timeline: Vec<SecondReport>,
    /// A staged run (`[[scenario.stages]]`): what each stage delivered; empty
    /// otherwise. The per-second `timeline` spans all stages.
    #[serde(default)]
    pub stages: Vec<StageReport>,
    /// Null when the engine delivered what was promised; else how it fell short.
    pub shortfall: Option<ShortfallReport>,
}

/// Closed loop (workers wait for responses) or open loop (arrivals on a schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadModeReport {
    Closed,
    Open,
}

/// What the load engine was asked to deliver (null where not applicable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromisedReport {
    /// Requests to send (in an open loop stopped by time: the schedule's count).
    pub requests: Option<u64>,
    /// Run length asked for, when the run is stopped by time.
    pub duration_s: Option<f64>,
    /// Closed loop: number of workers.
    pub concurrency: Option<u32>,
    /// Open loop: arrival rate at the start.
    pub rate_per_s: Option<f64>,
    /// Open loop with a ramp: the rate at the end of the ramp.
    pub ramp_to_per_s: Option<f64>,
    /// Open loop with a ramp: the ramp's length.
    pub ramp_over_s: Option<f64>,
    /// Open loop: cap on outstanding requests.
    pub max_in_flight: Option<u32>,
    /// Open loop: a request starting later than this after its intended time is late.
    pub late_after_ms: Option<f64>,
    /// Per-request timeout.
    pub timeout_s: f64,
    /// A staged run: what the stages ramp (`concurrency` or `rate`), the level at
    /// the start, and each stage's length and target level.
    #[serde(default)]
    pub stages: Option<PromisedStagesReport>,
}

/// The stages a staged run was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromisedStagesReport {
    /// `concurrency` (closed-loop workers) or `rate` (open-loop requests per second).
    pub ramped: String,
    /// The level at the start of the run.
    pub start: f64,
    /// Each stage: its length and the level it ramps to (linearly from the
    /// previous stage's level).
    pub stages: Vec<PromisedStageReport>,
}

/// One stage as asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromisedStageReport {
    pub duration_s: f64,
    pub target: f64,
}

/// What one stage of a staged run delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StageReport {
    /// 1-based.
    pub number: usize,
    /// Its `name` in stress.toml (a demand drop `scale_down_from` refers to); null
    /// when unnamed or outside a scenario.
    #[serde(default)]
    pub name: Option<String>,
    /// When the stage started and ended, seconds from the load's start.
    pub start_s: f64,
    pub end_s: f64,
    /// The level it ramped from and to (workers, or requests per second).
    pub from: f64,
    pub to: f64,
    /// Requests the stage's schedule held (rate stages).
    pub promised: Option<u64>,
    /// Requests sent in the stage.
    pub sent: u64,
    /// Of those, the ones that started late (rate stages).
    pub late: u64,
    /// Scheduled requests of the stage never sent (rate stages).
    pub dropped: u64,
}

/// Requests without an HTTP response, by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorCountsReport {
    pub timeout: u64,
    pub connection_refused: u64,
    pub connection_reset: u64,
    pub other: u64,
}

/// A latency distribution, from an HDR histogram with 3 significant digits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LatencyReport {
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}

/// One second of load (requests count in the second they completed in).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecondReport {
    /// Start of the second, since the load started.
    pub t_s: f64,
    /// Requests that completed in this second.
    pub requests: u64,
    /// Of those, the ones that failed.
    pub errors: u64,
    /// Null in a second without responses (as are the other percentiles).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// How the load engine fell short of its promise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShortfallReport {
    /// Promised requests never sent.
    pub missing: u64,
    /// Requests sent late.
    pub late: u64,
    /// Scheduled requests that could not start within their timeout.
    pub dropped: u64,
    /// Sentences, one per failed check.
    pub reasons: Vec<String>,
}

/// What the autoscaler saw and did over a scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimelineReport {
    /// Ready replicas when the load started: what a scale-up has to exceed.
    #[serde(default)]
    pub start_replicas: Option<u32>,
    /// Observations, in time order.
    pub samples: Vec<SampleReport>,
    /// Rescales with the controller's reason, replica incidents, readiness changes.
    #[serde(default)]
    pub events: Vec<EventReport>,
    /// Spans without metrics; a failing check blind for a quarter of its window is
    /// reported as not judged (infrastructure).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics_gaps: Vec<MetricsGapReport>,
}

impl TimelineReport {
    /// Highest ready replica count seen.
    pub fn peak_ready_replicas(&self) -> u32 {
        self.samples
            .iter()
            .map(|s| s.ready_replicas)
            .max()
            .unwrap_or(0)
    }

    /// Highest desired replica count seen.
    pub fn peak_desired_replicas(&self) -> u32 {
        self.samples
            .iter()
            .filter_map(|s| s.desired_replicas)
            .max()
            .unwrap_or(0)
    }
}

/// One observation of the autoscaler and the replicas it controls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SampleReport {
    /// Since the load started (negative: before it).
    pub t_s: f64,
    /// The replica count the autoscaler asked for (HPA `status.desiredReplicas`);
    /// null while the HPA has no status (before its first sync).
    pub desired_replicas: Option<u32>,
    /// Replicas that exist (HPA `status.currentReplicas`); null before the HPA's
    /// first sync.
    pub current_replicas: Option<u32>,
    /// Replicas that pass their readiness probe and receive traffic.
    pub ready_replicas: u32,
    /// Pods being stopped (deleted, not gone yet): a scale-down in progress.
    #[serde(default)]
    pub terminating_replicas: u32,
    /// Average CPU utilization in percent of the request, as the HPA computed it;
    /// null while no metric is available.
    pub cpu_utilization_pct: Option<u32>,
    /// The HPA's target average utilization, in percent of the request.
    pub cpu_target_pct: u32,
    /// Each replica's CPU and memory usage.
    pub replicas: Vec<ReplicaReport>,
    /// The HPA's status conditions at this moment.
    pub conditions: Vec<ConditionReport>,
    /// Every metric of the HPA's `status.currentMetrics`, in spec order, with its
    /// target and proposal (empty before the first sync, and in older reports).
    #[serde(default)]
    pub metrics: Vec<MetricReport>,
}

/// One HPA metric at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricReport {
    /// `cpu` or `memory` (Resource metrics), `container/resource` (ContainerResource).
    pub name: String,
    /// Current average utilization, percent of the request; null for AverageValue-only
    /// statuses or when unknown.
    pub current_utilization_pct: Option<u32>,
    /// Current average per pod, in the resource's unit: cores for cpu, bytes for memory.
    pub current_average_value: Option<f64>,
    /// Target average utilization, percent of the request (Utilization targets).
    pub target_utilization_pct: Option<u32>,
    /// Target average per pod (AverageValue targets), in the same unit.
    pub target_average_value: Option<f64>,
    /// Replicas this metric proposes: `ceil(currentReplicas × current / target)`, no
    /// change within the 10 % tolerance (an estimate from the status, see the docs).
    pub proposal_replicas: Option<u32>,
}

/// CPU and memory usage of one replica (a pod, or a local process).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReplicaReport {
    /// Pod name, or `replica-N` on the local backend.
    pub name: String,
    /// Usage over the last metric window; null when no metric is available yet.
    pub cpu_millicores: Option<u64>,
    /// Memory working set at the last scrape; null when no metric is available yet
    /// (and in older reports).
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// Whether the replica is ready (receives traffic).
    pub ready: bool,
}

/// An HPA status condition, with Kubernetes' type and reason strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConditionReport {
    /// `AbleToScale`, `ScalingActive` or `ScalingLimited`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// E.g. `TooManyReplicas`.
    pub reason: String,
    pub message: String,
}

/// Something the autoscaler or the replica set did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventReport {
    /// Since the load started.
    pub t_s: f64,
    /// E.g. `scaled 1 -> 3 on memory: memory utilization 180% of request is above
    /// target 60% (proposal 3); cpu utilization 4% of request is below target 50%
    /// (proposal 1)`: the metric named after `on` proposed the most replicas.
    pub message: String,
    /// Happened to the scenario, not by the autoscaler's choice (a container that
    /// died and restarted, the metrics API gone and back): what the run rode through.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incident: bool,
}

/// A span in which the metrics API could not be read: its samples carry no per-pod
/// usage (a gap, not zeros).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricsGapReport {
    /// Since the load started: the first sample that could not read it.
    pub from_s: f64,
    /// The first sample that could again, or the scenario's last sample.
    pub to_s: f64,
    /// The first failure, in the API's words.
    pub cause: String,
    /// Whether the metrics were back before the scenario ended.
    pub recovered: bool,
}

/// One check: a JUnit testcase and a row of the summary table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VerdictReport {
    /// Stable identifier, e.g. `min_success_rate`.
    pub check: String,
    /// What was expected, for people: `success rate >= 95.0 %`.
    pub expected: String,
    /// What was measured, for people: `99.2 %`.
    pub measured: String,
    /// How the check ended.
    pub outcome: Outcome,
}

impl VerdictReport {
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

/// How a check ended: `pass`, `fail`, or `error` (it could not be made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    Error,
}

// ---- conversions from the harness's own types ----

impl From<verdict::Outcome> for Outcome {
    fn from(outcome: verdict::Outcome) -> Self {
        match outcome {
            verdict::Outcome::Pass => Outcome::Pass,
            verdict::Outcome::Fail => Outcome::Fail,
            verdict::Outcome::Error => Outcome::Error,
        }
    }
}

impl From<&Verdict> for VerdictReport {
    fn from(v: &Verdict) -> Self {
        VerdictReport {
            check: v.check.clone(),
            expected: v.expected.clone(),
            measured: v.measured.clone(),
            outcome: v.outcome.into(),
        }
    }
}

impl From<ReplicaBounds> for Bounds {
    fn from(b: ReplicaBounds) -> Self {
        Bounds {
            min: b.min,
            max: b.max,
        }
    }
}

impl From<&Timeline> for TimelineReport {
    fn from(t: &Timeline) -> Self {
        TimelineReport {
            start_replicas: t.start_replicas,
            samples: t.samples.iter().map(SampleReport::from).collect(),
            events: t.events.iter().map(EventReport::from).collect(),
            metrics_gaps: t
                .metrics_gaps
                .iter()
                .map(|g| MetricsGapReport {
                    from_s: g.from_s,
                    to_s: g.to_s,
                    cause: g.cause.clone(),
                    recovered: g.recovered,
                })
                .collect(),
        }
    }
}

impl From<&ScaleSample> for SampleReport {
    fn from(s: &ScaleSample) -> Self {
        SampleReport {
            t_s: s.t_s,
            desired_replicas: s.desired_replicas,
            current_replicas: s.current_replicas,
            ready_replicas: s.ready_replicas,
            terminating_replicas: s.terminating_replicas,
            cpu_utilization_pct: s.cpu_utilization_pct,
            cpu_target_pct: s.cpu_target_pct,
            replicas: s.replicas.iter().map(ReplicaReport::from).collect(),
            conditions: s.conditions.iter().map(ConditionReport::from).collect(),
            metrics: s.metrics.iter().map(MetricReport::from).collect(),
        }
    }
}

impl From<&MetricSample> for MetricReport {
    fn from(m: &MetricSample) -> Self {
        MetricReport {
            name: m.name.clone(),
            current_utilization_pct: m.current_utilization_pct,
            current_average_value: m.current_average_value,
            target_utilization_pct: m.target_utilization_pct,
            target_average_value: m.target_average_value,
            proposal_replicas: m.proposal_replicas,
        }
    }
}

impl From<&ReplicaUsage> for ReplicaReport {
    fn from(r: &ReplicaUsage) -> Self {
        ReplicaReport {
            name: r.name.clone(),
            cpu_millicores: r.cpu_millicores,
            memory_bytes: r.memory_bytes,
            ready: r.ready,
        }
    }
}

impl From<&Condition> for ConditionReport {
    fn from(c: &Condition) -> Self {
        ConditionReport {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        }
    }
}

impl From<&ScaleEvent> for EventReport {
    fn from(e: &ScaleEvent) -> Self {
        EventReport {
            t_s: e.t_s,
            message: e.message.clone(),
            incident: e.incident,
        }
    }
}

impl From<&LoadResult> for LoadReport {
    fn from(l: &LoadResult) -> Self {
        LoadReport {
            mode: match l.mode {
                LoadMode::Closed => LoadModeReport::Closed,
                LoadMode::Open => LoadModeReport::Open,
            },
            promised: PromisedReport::from(&l.promised),
            cancelled: l.cancelled,
            sent: l.sent,
            ok: l.ok,
            failed: l.failed,
            status_counts: l
                .status_counts
                .iter()
                .map(|(status, count)| (status.to_string(), *count))
                .collect(),
            errors: ErrorCountsReport::from(&l.errors),
            success_rate: l.success_rate,
            throughput_per_s: l.throughput_per_s,
            duration_s: l.duration_s,
            late: l.late,
            dropped: l.dropped,
            latency_ms: l.latency_ms.as_ref().map(LatencyReport::from),
            service_time_ms: l.service_time_ms.as_ref().map(LatencyReport::from),
            timeline: l.timeline.iter().map(SecondReport::from).collect(),
            stages: l
                .stages
                .iter()
                .map(|s| StageReport {
                    number: s.number,
                    // The engine's stages are unnamed; the gate adds the config's names.
                    name: None,
                    start_s: s.start_s,
                    end_s: s.end_s,
                    from: s.from,
                    to: s.to,
                    promised: s.promised,
                    sent: s.sent,
                    late: s.late,
                    dropped: s.dropped,
                })
                .collect(),
            shortfall: l.shortfall.as_ref().map(ShortfallReport::from),
        }
    }
}

impl From<&Promised> for PromisedReport {
    fn from(p: &Promised) -> Self {
        PromisedReport {
            requests: p.requests,
            duration_s: p.duration_s,
            concurrency: p.concurrency,
            rate_per_s: p.rate_per_s,
            ramp_to_per_s: p.ramp_to_per_s,
            ramp_over_s: p.ramp_over_s,
            max_in_flight: p.max_in_flight,
            late_after_ms: p.late_after_ms,
            timeout_s: p.timeout_s,
            stages: p.stages.as_ref().map(|s| PromisedStagesReport {
                ramped: match s.ramped {
                    scaleproof_load::Ramped::Concurrency => "concurrency".into(),
                    scaleproof_load::Ramped::Rate => "rate".into(),
                },
                start: s.start,
                stages: s
                    .stages
                    .iter()
                    .map(|stage| PromisedStageReport {
                        duration_s: stage.duration.as_secs_f64(),
                        target: stage.target,
                    })
                    .collect(),
            }),
        }
    }
}

impl From<&ErrorCounts> for ErrorCountsReport {
    fn from(e: &ErrorCounts) -> Self {
        ErrorCountsReport {
            timeout: e.timeout,
            connection_refused: e.connection_refused,
            connection_reset: e.connection_reset,
            other: e.other,
        }
    }
}

impl From<&LatencySummary> for LatencyReport {
    fn from(l: &LatencySummary) -> Self {
        LatencyReport {
            min_ms: l.min_ms,
            mean_ms: l.mean_ms,
            p50_ms: l.p50_ms,
            p90_ms: l.p90_ms,
            p95_ms: l.p95_ms,
            p99_ms: l.p99_ms,
            p99_9_ms: l.p99_9_ms,
            max_ms: l.max_ms,
        }
    }
}

impl From<&SecondStats> for SecondReport {
    fn from(s: &SecondStats) -> Self {
        SecondReport {
            t_s: s.t_s,
            requests: s.requests,
            errors: s.errors,
            p50_ms: s.p50_ms,
            p95_ms: s.p95_ms,
            p99_ms: s.p99_ms,
        }
    }
}

impl From<&Shortfall> for ShortfallReport {
    fn from(s: &Shortfall) -> Self {
        ShortfallReport {
            missing: s.missing,
            late: s.late,
            dropped: s.dropped,
            reasons: s.reasons.clone(),
        }
    }
}
