//! `stress.toml`: the gate's contract. What to load, how, and what must be seen.
//!
//! Parsing happens in two steps. Serde reads the file into raw structs that reject
//! unknown keys and wrong types (toml reports line and column). Validation then turns
//! the raw structs into the types the rest of the harness uses and rejects impossible
//! values (a success rate above 1, a minimum above a maximum) with the file, line and
//! key, before any cluster work starts.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use scaleproof_load::{LoadConfig, Mode, Rate, RequestSpec, Stop};
use serde::Deserialize;
use toml::Spanned;

use crate::backend::BackendKind;
use crate::manifests::HpaOverrides;

pub mod behavior;
mod stages;

pub use stages::NamedStages;

/// Where in which file something is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based; `None` when the error is not tied to a place (e.g. an unreadable file).
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The dotted key, e.g. `scenario[1].expect.min_success_rate`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The whole file, validated.
#[derive(Debug, Clone)]
pub struct StressConfig {
    pub path: PathBuf,
    pub target: Target,
    pub backend: Backends,
    pub scenarios: Vec<Scenario>,
    pub compare: Vec<Comparison>,
    pub baseline: BaselineMargins,
    /// Keys that still work but will go, each with what to write instead; the gate
    /// logs them.
    pub deprecations: Vec<String>,
}

/// `[baseline]`: how much worse than the baseline (`--baseline`, main's last run
/// in the PR workflow) a metric may get before the run fails. Fractions, plus an
/// absolute allowance where a relative one alone would flag noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineMargins {
    /// p95 latency may rise by this fraction...
    pub p95: f64,
    /// ...plus this many milliseconds: a p95 of a few ms doubles on scheduling noise.
    pub p95_slack_ms: f64,
    /// Throughput may fall by this fraction.
    pub throughput: f64,
    /// The time to the first scale-up may grow by this fraction...
    pub first_scale_up: f64,
    /// ...plus this many HPA sync periods of the run: the same load can cross the
    /// target one sync later, so a relative margin alone would flag that as a
    /// regression on kind (15 s syncs) while hiding nothing on the local backend.
    pub first_scale_up_slack_syncs: f64,
    /// ...plus this many metrics scrape periods of the run: the load is seen a
    /// scrape (and a kubelet housekeeping) earlier or later from run to run.
    pub first_scale_up_slack_scrapes: f64,
}

impl Default for BaselineMargins {
    /// Without a `[baseline]` table: 20 % each, 5 ms and one sync period of slack.
    fn default() -> Self {
        BaselineMargins {
            p95: 0.2,
            p95_slack_ms: 5.0,
            throughput: 0.2,
            first_scale_up: 0.2,
            first_scale_up_slack_syncs: 1.0,
            first_scale_up_slack_scrapes: 0.0,
        }
    }
}

impl BaselineMargins {
    /// Every fraction set to `margin` (`--baseline-margin`); the slacks stay.
    pub fn with_fraction(self, margin: f64) -> Self {
        BaselineMargins {
            p95: margin,
            throughput: margin,
            first_scale_up: margin,
            ..self
        }
    }
}

/// What is under test, validated: the request is in the load engine's own types.
#[derive(Debug, Clone)]
pub struct Target {
    /// Namespace the cluster backends deploy into (labeled Pod Security "restricted").
    pub namespace: String,
    pub deployment: String,
    pub hpa: String,
    /// Directory of the manifests, relative to the config file.
    pub manifests: PathBuf,
    /// The request every scenario sends.
    pub request: RequestSpec,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// `[target]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    /// Namespace the cluster backends deploy into (labeled Pod Security "restricted").
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default = "default_deployment")]
    pub deployment: String,
    #[serde(default = "default_hpa")]
    pub hpa: String,
    /// Directory of the manifests, relative to the config file.
    #[serde(default = "default_manifests")]
    pub manifests: PathBuf,
    #[serde(default)]
    pub request: RawRequest,
}

fn default_namespace() -> String {
    "scaleproof".into()
}
fn default_deployment() -> String {
    "iris-classifier".into()
}
fn default_hpa() -> String {
    "iris-classifier-hpa".into()
}
fn default_manifests() -> PathBuf {
    PathBuf::from("k8s")
}

/// `[target.request]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_path")]
    pub path: String,
    /// A JSON body; the default is one Iris sample.
    #[serde(default = "default_body")]
    pub body: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
}

impl Default for RawRequest {
    fn default() -> Self {
        RawRequest {
            method: default_method(),
            path: default_path(),
            body: default_body(),
            headers: BTreeMap::new(),
            timeout_s: default_timeout_s(),
        }
    }
}

fn default_method() -> String {
    "POST".into()
}
fn default_path() -> String {
    "/predict".into()
}
fn default_body() -> String {
    r#"{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}"#.into()
}
fn default_timeout_s() -> f64 {
    10.0
}

/// Per-backend settings, so scenarios stay backend-neutral.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backends {
    #[serde(default)]
    pub local: BackendSettings,
    #[serde(default)]
    pub kind: BackendSettings,
    #[serde(default)]
    pub cluster: BackendSettings,
}

/// How one backend runs the workload.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSettings {
    /// Deprecated: iris-server's `IRIS_CPU_COST_MS` under another name. Still applied
    /// (with a warning) for one release; write `env.IRIS_CPU_COST_MS` instead.
    pub cpu_cost_ms: Option<f64>,
    /// Deprecated, as `cpu_cost_ms`: `env.IRIS_MEMORY_COST_MIB`.
    pub memory_cost_mib: Option<f64>,
    /// How often CPU usage is sampled (metrics-server `--metric-resolution`).
    pub metric_resolution_s: Option<f64>,
    /// How often the HPA reconciles. Local: set here. Existing cluster: what its
    /// controller-manager uses (default 15 s), so the reset waits long enough.
    pub sync_period_s: Option<f64>,
    /// Where load goes (cluster backends; the local backend knows its replicas).
    pub url: Option<String>,
    /// Requests one connection carries before the load engine reconnects (1: no
    /// keep-alive). Default 1: kube-proxy (and the local backend's NodePort) balance
    /// connections, and pods added by a scale-up would otherwise get no traffic.
    pub requests_per_connection: Option<u32>,
    /// Extra env vars for the service container.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Local: the simulated control plane's timing preset (`fast` or `kind`).
    pub timing: Option<scaleproof_sim::TimingPreset>,
    /// Local: the seed of the timing's random phases (metrics-server's scrape phase,
    /// housekeeping waits, pod start delays). Default: a new one each run, printed
    /// and written to report.json, so a run can be repeated with its phases.
    pub seed: Option<u64>,
    /// Local: how each container of the Deployment runs without a container runtime,
    /// by the container's name (`[backend.local.containers.<name>]`).
    #[serde(default)]
    pub containers: BTreeMap<String, scaleproof_sim::LocalContainer>,
    /// Local: errors the simulated API answers the harness with, to rehearse a flaky
    /// cluster (`[[backend.local.faults]]`: status 429/500/503 and/or delay_ms,
    /// optional verb, resource, retry_after_s, times).
    #[serde(default)]
    pub faults: Vec<scaleproof_sim::ApiFault>,
    /// Local: disruptions played after each scenario's load starts
    /// (`[[backend.local.disruptions]]`: kind `metrics-server-restart` with `down_s`,
    /// `end-watches`, `end-watches-410`, `pod-kill`, `pod-evict`; `after_s`).
    #[serde(default)]
    pub disruptions: Vec<scaleproof_sim::Disruption>,
    /// kind: how to build the service image (`[backend.kind.image]`), when it is not
    /// this repository's iris-server.
    pub image: Option<crate::backend::image::ImageBuild>,
}

impl Backends {
    /// The settings of `backend`.
    pub fn of(&self, backend: BackendKind) -> &BackendSettings {
        match backend {
            BackendKind::Local => &self.local,
            BackendKind::Kind => &self.kind,
            BackendKind::Cluster => &self.cluster,
        }
    }
}

/// The deprecated knobs and the env var each one stands for.
const DEPRECATED_KNOBS: [(&str, &str); 2] = [
    ("cpu_cost_ms", "IRIS_CPU_COST_MS"),
    ("memory_cost_mib", "IRIS_MEMORY_COST_MIB"),
];

impl BackendSettings {
    fn knob(&self, key: &str) -> Option<f64> {
        match key {
            "cpu_cost_ms" => self.cpu_cost_ms,
            "memory_cost_mib" => self.memory_cost_mib,
            _ => None,
        }
    }

    /// The env overrides this backend applies to the service.
    pub fn env_overrides(&self) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        if let Some(cost) = self.cpu_cost_ms {
            env.insert("IRIS_CPU_COST_MS".into(), cost.to_string());
        }
        if let Some(cost) = self.memory_cost_mib {
            env.insert("IRIS_MEMORY_COST_MIB".into(), cost.to_string());
        }
        env
    }
}

/// One expectation of a scenario. Each becomes a JUnit testcase.
#[derive(Debug, Clone, PartialEq)]
pub enum Expectation {
    MinSuccessRate(f64),
    MaxP95Ms(f64),
    MaxP99Ms(f64),
    MinThroughputPerS(f64),
    MinPeakReplicas(u32),
    MaxPeakReplicas(u32),
    ReachesMaxReplicas,
    ScaleUpWithinS(f64),
    /// The HPA wanted more than it may have: ScalingLimited=True / TooManyReplicas,
    /// or CPU utilization above target while at maxReplicas.
    ScalingLimited,
    /// Throughput in the second half of the load is not higher than in the first
    /// half by more than the given fraction (no scaling gain while restricted).
    ThroughputPlateaus,
    /// After demand drops, ready replicas are back at minReplicas within N s.
    ScaleDownWithinS {
        within_s: f64,
        from: DemandDrop,
    },
    /// Requests that failed while any pod was terminating: at most N.
    MaxFailedDuringScaleDown(u64),
    /// The desired replica count changes direction (up, then down, ...) at most N
    /// times: a flapping guard.
    MaxReplicaDirectionChanges(u32),
    /// The HPA's CPU utilization never exceeds N percent of the request.
    MaxCpuUtilizationPct(u32),
}

/// When demand drops, for `scale_down_within_s`.
#[derive(Debug, Clone, PartialEq)]
pub enum DemandDrop {
    /// When the load ends.
    LoadEnd,
    /// When the named stage starts, `at_s` seconds after the load started.
    Stage { name: String, at_s: f64 },
}

/// One scenario: a load shape, optional HPA overrides and its expectations.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// How load is generated, in the load engine's own terms: closed loop (workers
    /// waiting for responses, as the original load_test.py) or open loop (arrivals
    /// at a rate, ramped or not, latency from the intended send time).
    pub load: Mode,
    /// A staged load's stage names (`None` otherwise).
    pub stages: Option<NamedStages>,
    pub hpa: HpaOverrides,
    /// Keep watching the autoscaler this long after the load ends.
    pub observe_after_s: f64,
    pub expect: Vec<Expectation>,
    /// The scenario as it runs on a backend that changes it (`[scenario.backend.*]`),
    /// validated like the scenario itself.
    pub variants: BTreeMap<BackendKind, Variant>,
    /// Its margins against a baseline: `[baseline]` with `[scenario.baseline]` over it.
    pub baseline: BaselineMargins,
}

/// What `[scenario.backend.<name>]` makes of a scenario on that backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub load: Mode,
    pub stages: Option<NamedStages>,
    pub observe_after_s: f64,
    pub expect: Vec<Expectation>,
}

impl Scenario {
    /// The scenario as it runs with the numbers of `profile` (a backend; the local
    /// backend rehearsing kind timing uses kind's).
    pub fn on(&self, profile: BackendKind) -> Scenario {
        let mut scenario = self.clone();
        if let Some(variant) = self.variants.get(&profile) {
            scenario.load = variant.load.clone();
            scenario.stages = variant.stages.clone();
            scenario.observe_after_s = variant.observe_after_s;
            scenario.expect = variant.expect.clone();
        }
        scenario
    }
}

/// A cross-scenario expectation, e.g. the scaling gain
/// `throughput(bottleneck-2000) / throughput(restricted-2000)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub name: String,
    pub numerator: String,
    pub denominator: String,
    /// Fail when the throughput ratio is below this (`None`: report only).
    pub min_ratio: Option<f64>,
}

// ---- raw, as written in the file ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_target")]
    target: RawTarget,
    #[serde(default)]
    backend: Backends,
    #[serde(default)]
    scenario: Vec<RawScenario>,
    #[serde(default)]
    compare: Vec<RawComparison>,
    #[serde(default)]
    baseline: RawBaseline,
}

/// `[baseline]` (and a scenario's `[scenario.baseline]`) as written.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawBaseline {
    p95_margin: Option<Spanned<f64>>,
    throughput_margin: Option<Spanned<f64>>,
    first_scale_up_margin: Option<Spanned<f64>>,
    p95_slack_ms: Option<Spanned<f64>>,
    first_scale_up_slack_syncs: Option<Spanned<f64>>,
    first_scale_up_slack_scrapes: Option<Spanned<f64>>,
}

/// `[scenario.hpa]` as written.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawHpa {
    min_replicas: Option<i32>,
    max_replicas: Option<i32>,
    target_cpu_pct: Option<i32>,
    /// autoscaling/v2 `spec.behavior` fields, laid over the manifest's.
    behavior: Option<Spanned<toml::Value>>,
}

fn default_target() -> RawTarget {
    RawTarget {
        namespace: default_namespace(),
        deployment: default_deployment(),
        hpa: default_hpa(),
        manifests: default_manifests(),
        request: RawRequest::default(),
    }
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    requests: Option<Spanned<u64>>,
    duration_s: Option<Spanned<f64>>,
    concurrency: Option<Spanned<u32>>,
    rate: Option<Spanned<f64>>,
    ramp_to: Option<Spanned<f64>>,
    max_in_flight: Option<Spanned<u32>>,
    stages: Option<Vec<stages::RawStage>>,
    #[serde(default)]
    hpa: RawHpa,
    #[serde(default)]
    observe_after_s: Option<Spanned<f64>>,
    #[serde(default)]
    expect: RawExpect,
    /// Per-backend changes (`[scenario.backend.kind]`): load size and expectations.
    #[serde(default)]
    backend: RawVariants,
    /// This scenario's margins against a baseline, where `[baseline]`'s do not fit it.
    #[serde(default)]
    baseline: RawBaseline,
}

/// `[scenario.backend.*]` as written.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawVariants {
    local: Option<RawVariant>,
    kind: Option<RawVariant>,
    cluster: Option<RawVariant>,
}

/// What a scenario may change on one backend: how much load (a cluster's detection
/// chain is slower than the local backend's, so it needs longer load for the same
/// story) and its expectations. The load keys given replace the scenario's (the
/// stop keys `requests`/`duration_s` as a pair, the mode keys as a group); the
/// expectations given replace those of the same name.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    requests: Option<Spanned<u64>>,
    duration_s: Option<Spanned<f64>>,
    concurrency: Option<Spanned<u32>>,
    rate: Option<Spanned<f64>>,
    ramp_to: Option<Spanned<f64>>,
    max_in_flight: Option<Spanned<u32>>,
    stages: Option<Vec<stages::RawStage>>,
    observe_after_s: Option<Spanned<f64>>,
    #[serde(default)]
    expect: RawExpect,
}

impl RawScenario {
    /// This scenario with `variant` laid over it.
    fn with_variant(&self, variant: &RawVariant) -> RawScenario {
        let mut merged = self.clone();
        if variant.requests.is_some() || variant.duration_s.is_some() {
            merged.requests = variant.requests.clone();
            merged.duration_s = variant.duration_s.clone();
        }
        let mode_given = variant.concurrency.is_some()
            || variant.rate.is_some()
            || variant.ramp_to.is_some()
            || variant.max_in_flight.is_some()
            || variant.stages.is_some();
        if mode_given {
            merged.concurrency = variant.concurrency.clone();
            merged.rate = variant.rate.clone();
            merged.ramp_to = variant.ramp_to.clone();
            merged.max_in_flight = variant.max_in_flight.clone();
            merged.stages = variant.stages.clone();
        }
        if variant.observe_after_s.is_some() {
            merged.observe_after_s = variant.observe_after_s.clone();
        }
        merged.expect = self.expect.overlaid(&variant.expect);
        merged.backend = RawVariants::default();
        merged
    }
}

/// Expectations as written; every key optional.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExpect {
    min_success_rate: Option<Spanned<f64>>,
    max_p95_ms: Option<Spanned<f64>>,
    max_p99_ms: Option<Spanned<f64>>,
    min_throughput_per_s: Option<Spanned<f64>>,
    min_peak_replicas: Option<Spanned<u32>>,
    max_peak_replicas: Option<Spanned<u32>>,
    reaches_max_replicas: Option<Spanned<bool>>,
    scale_up_within_s: Option<Spanned<f64>>,
    scaling_limited: Option<Spanned<bool>>,
    throughput_plateaus: Option<Spanned<bool>>,
    scale_down_within_s: Option<Spanned<f64>>,
    /// The stage whose start is the drop in demand (default: the load's end).
    scale_down_from: Option<Spanned<String>>,
    max_failed_during_scale_down: Option<Spanned<u64>>,
    max_replica_direction_changes: Option<Spanned<u32>>,
    max_cpu_utilization_pct: Option<Spanned<u32>>,
}

impl RawExpect {
    /// These expectations with those `over` gives replacing the same-named ones. The
    /// struct literal lists every field, so a new expectation cannot be forgotten.
    fn overlaid(&self, over: &RawExpect) -> RawExpect {
        macro_rules! either {
            ($($field:ident),* $(,)?) => {
                RawExpect { $($field: over.$field.clone().or_else(|| self.$field.clone())),* }
            };
        }
        either!(
            min_success_rate,
            max_p95_ms,
            max_p99_ms,
            min_throughput_per_s,
            min_peak_replicas,
            max_peak_replicas,
            reaches_max_replicas,
            scale_up_within_s,
            scaling_limited,
            throughput_plateaus,
            scale_down_within_s,
            scale_down_from,
            max_failed_during_scale_down,
            max_replica_direction_changes,
            max_cpu_utilization_pct,
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComparison {
    name: Spanned<String>,
    numerator: Spanned<String>,
    denominator: Spanned<String>,
    min_ratio: Option<Spanned<f64>>,
}

/// Turns byte spans into `file:line:column` errors.
struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn error(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = match span {
            Some(span) => {
                let (l, c) = line_column(self.text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError {
            path: self.path.to_path_buf(),
            line,
            column,
            key: Some(key.to_string()).filter(|k| !k.is_empty()),
            message: message.into(),
        }
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `[backend.*.containers]`: only the local backend runs containers itself; each
/// entry names one program, in exactly one way.
fn validate_image(at: &Locator<'_>, backends: &Backends) -> Result<(), ConfigError> {
    for (name, settings, why) in [
        (
            "local",
            &backends.local,
            "the local backend runs no images: [backend.local.containers] says which \
             program stands for each container",
        ),
        (
            "cluster",
            &backends.cluster,
            "scaleproof builds images only into kind; give an existing cluster an image \
             its nodes can pull with --image",
        ),
    ] {
        if settings.image.is_some() {
            return Err(at.error(None, &format!("backend.{name}.image"), why));
        }
    }
    if let Some(build) = &backends.kind.image {
        if build.dockerfile.as_os_str().is_empty() {
            return Err(at.error(
                None,
                "backend.kind.image.dockerfile",
                "is empty: the Dockerfile's path, relative to this file",
            ));
        }
        if let Some(repository) = &build.repository
            && (repository.is_empty() || repository.contains(':') || repository.contains('@'))
        {
            return Err(at.error(
                None,
                "backend.kind.image.repository",
                format!(
                    "{repository:?} is not an image name: the tag is scaleproof's (the git \
                     commit), so give the name without `:tag` or `@digest`"
                ),
            ));
        }
    }
    Ok(())
}

/// `[[backend.local.faults]]`: only the simulated API can play them, and each must be
/// one it can play.
fn validate_faults(at: &Locator<'_>, backends: &Backends) -> Result<(), ConfigError> {
    for (name, settings) in [("kind", &backends.kind), ("cluster", &backends.cluster)] {
        for (key, given) in [
            ("faults", !settings.faults.is_empty()),
            ("disruptions", !settings.disruptions.is_empty()),
        ] {
            if given {
                return Err(at.error(
                    None,
                    &format!("backend.{name}.{key}"),
                    "only the local backend's simulated cluster plays faults; a real \
                     cluster brings its own",
                ));
            }
        }
    }
    for (i, fault) in backends.local.faults.iter().enumerate() {
        fault
            .check()
            .map_err(|why| at.error(None, &format!("backend.local.faults[{i}]"), why))?;
    }
    for (i, disruption) in backends.local.disruptions.iter().enumerate() {
        disruption
            .check()
            .map_err(|why| at.error(None, &format!("backend.local.disruptions[{i}]"), why))?;
    }
    Ok(())
}

fn validate_containers(at: &Locator<'_>, backends: &Backends) -> Result<(), ConfigError> {
    for (name, settings) in [("kind", &backends.kind), ("cluster", &backends.cluster)] {
        if let Some(container) = settings.containers.keys().next() {
            return Err(at.error(
                None,
                &format!("backend.{name}.containers.{container}"),
                "a cluster runs the container's image; only [backend.local.containers] \
                 says how a container runs without one (the image is built from the \
                 Dockerfile or given with --image)",
            ));
        }
    }
    for (name, container) in &backends.local.containers {
        let key = format!("backend.local.containers.{name}");
        match (&container.command, &container.cargo_bin) {
            (Some(_), Some(_)) => {
                return Err(at.error(
                    None,
                    &key,
                    "has both `command` and `cargo_bin`: give one way to run the container",
                ));
            }
            (None, None) => {
                return Err(at.error(
                    None,
                    &key,
                    "says neither `command` (a program and its leading args) nor \
                     `cargo_bin` (a binary of this workspace): give one",
                ));
            }
            (Some(command), None) if command.first().is_none_or(|c| c.trim().is_empty()) => {
                return Err(at.error(
                    None,
                    &format!("{key}.command"),
                    "is empty: its first word is the program to run",
                ));
            }
            (None, Some(cargo))
                if cargo.package.trim().is_empty() || cargo.bin().trim().is_empty() =>
            {
                return Err(at.error(
                    None,
                    &format!("{key}.cargo_bin"),
                    "needs a package (and optionally a bin) name",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

impl StressConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Validates `text` as if read from `path` (errors name that path).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let at = Locator { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's message names the key; the span gives the place.
            at.error(e.span(), "", e.message().trim().to_string())
        })?;
        let (request, timeout) = validate_request(&at, &raw.target.request)?;
        for (name, settings) in [
            ("local", &raw.backend.local),
            ("kind", &raw.backend.kind),
            ("cluster", &raw.backend.cluster),
        ] {
            for (key, value) in [
                ("cpu_cost_ms", settings.cpu_cost_ms),
                ("memory_cost_mib", settings.memory_cost_mib),
                ("metric_resolution_s", settings.metric_resolution_s),
                ("sync_period_s", settings.sync_period_s),
            ] {
                if let Some(v) = value
                    && !(0.0..=MAX_SECONDS * 1000.0).contains(&v)
                {
                    return Err(at.error(
                        None,
                        &format!("backend.{name}.{key}"),
                        format!("must be a non-negative number, got {v}"),
                    ));
                }
            }
        }
        for (name, settings) in [
            ("local", &raw.backend.local),
            ("kind", &raw.backend.kind),
            ("cluster", &raw.backend.cluster),
        ] {
            if settings.requests_per_connection == Some(0) {
                return Err(at.error(
                    None,
                    &format!("backend.{name}.requests_per_connection"),
                    "must be at least 1",
                ));
            }
        }
        validate_containers(&at, &raw.backend)?;
        validate_faults(&at, &raw.backend)?;
        validate_image(&at, &raw.backend)?;
        // On kind these periods belong to the cluster (k8s/kind.yaml and the
        // metrics-server flags), not to a run: refuse them rather than accept a setting
        // that would silently do nothing. On an existing cluster `sync_period_s` states
        // the controller-manager's period (the reset waits two of them); scaleproof
        // cannot change it.
        for (backend, key, value) in [
            (
                "kind",
                "metric_resolution_s",
                raw.backend.kind.metric_resolution_s,
            ),
            ("kind", "sync_period_s", raw.backend.kind.sync_period_s),
            (
                "cluster",
                "metric_resolution_s",
                raw.backend.cluster.metric_resolution_s,
            ),
        ] {
            if value.is_some() {
                return Err(at.error(
                    None,
                    &format!("backend.{backend}.{key}"),
                    "is fixed by the cluster (kind: HPA sync period 5 s in k8s/kind.yaml, \
                     metrics-server --metric-resolution=15s), not per run; remove it",
                ));
            }
        }
        if raw.scenario.is_empty() {
            return Err(at.error(
                None,
                "scenario",
                "no [[scenario]] defined: the gate would check nothing",
            ));
        }
        let baseline = margins(&at, "baseline", &raw.baseline, BaselineMargins::default())?;
        let mut scenarios: Vec<Scenario> = Vec::new();
        for (i, s) in raw.scenario.into_iter().enumerate() {
            let key = format!("scenario[{i}]");
            let own = s.baseline.clone();
            let mut scenario = validate_scenario(&at, &key, s)?;
            scenario.baseline = margins(&at, &format!("{key}.baseline"), &own, baseline)?;
            if scenarios.iter().any(|other| other.name == scenario.name) {
                return Err(at.error(
                    None,
                    &format!("{key}.name"),
                    format!("duplicate scenario name {:?}", scenario.name),
                ));
            }
            scenarios.push(scenario);
        }
        let mut compare = Vec::new();
        for (i, c) in raw.compare.into_iter().enumerate() {
            let key = format!("compare[{i}]");
            for side in [&c.numerator, &c.denominator] {
                if !scenarios.iter().any(|s| &s.name == side.get_ref()) {
                    return Err(at.error(
                        Some(side.span()),
                        &key,
                        format!("no scenario named {:?}", side.get_ref()),
                    ));
                }
            }
            if let Some(r) = &c.min_ratio
                && !(r.get_ref().is_finite() && *r.get_ref() > 0.0)
            {
                return Err(at.error(
                    Some(r.span()),
                    &format!("{key}.min_ratio"),
                    "must be a positive number",
                ));
            }
            compare.push(Comparison {
                name: c.name.into_inner(),
                numerator: c.numerator.into_inner(),
                denominator: c.denominator.into_inner(),
                min_ratio: c.min_ratio.map(Spanned::into_inner),
            });
        }
        // The cost knobs were iris-server's env vars promoted to config keys; they
        // are plain container env now. Both spellings at once would be ambiguous.
        let mut deprecations = Vec::new();
        for (name, settings) in [
            ("local", &raw.backend.local),
            ("kind", &raw.backend.kind),
            ("cluster", &raw.backend.cluster),
        ] {
            for (key, var) in DEPRECATED_KNOBS {
                let Some(value) = settings.knob(key) else {
                    continue;
                };
                if settings.env.contains_key(var) {
                    return Err(at.error(
                        None,
                        &format!("backend.{name}.{key}"),
                        format!(
                            "set twice: `{key}` is the deprecated name of `env.{var}`, which \
                             is set too; keep `[backend.{name}.env] {var}` only"
                        ),
                    ));
                }
                deprecations.push(format!(
                    "{}: backend.{name}.{key} is deprecated and goes away in the next release: \
                     it is the container env var {var}; write `[backend.{name}.env] {var} = \"{value}\"`",
                    path.display()
                ));
            }
        }
        let raw_target = raw.target;
        Ok(StressConfig {
            path: path.to_path_buf(),
            target: Target {
                namespace: raw_target.namespace,
                deployment: raw_target.deployment,
                hpa: raw_target.hpa,
                manifests: raw_target.manifests,
                request,
                timeout,
            },
            backend: raw.backend,
            scenarios,
            compare,
            baseline,
            deprecations,
        })
    }

    /// `[backend.local.containers]` with its paths resolved against the config
    /// file's directory.
    pub fn local_containers(&self) -> BTreeMap<String, scaleproof_sim::LocalContainer> {
        let base = self.path.parent().unwrap_or_else(|| Path::new("."));
        self.backend
            .local
            .containers
            .iter()
            .map(|(name, entry)| (name.clone(), entry.resolved(base)))
            .collect()
    }

    /// The manifests directory, resolved against the config file's directory.
    pub fn manifests_dir(&self) -> PathBuf {
        let base = self.path.parent().unwrap_or_else(|| Path::new("."));
        base.join(&self.target.manifests)
    }

    /// Checks what needs the manifests too: the names in `[target]` are the objects
    /// of k8s/, every scenario's HPA overrides make a valid HPA, and no expectation
    /// asks for more replicas than the scenario's HPA allows.
    pub fn check_against(
        &self,
        manifests: &crate::manifests::Manifests,
    ) -> Result<(), ConfigError> {
        let fail = |key: String, message: String| ConfigError {
            path: self.path.clone(),
            line: None,
            column: None,
            key: Some(key),
            message,
        };
        let names = [
            (
                "target.deployment",
                &self.target.deployment,
                &manifests.deployment.metadata.name,
            ),
            ("target.hpa", &self.target.hpa, &manifests.hpa.metadata.name),
        ];
        for (key, configured, actual) in names {
            if actual.as_deref() != Some(configured.as_str()) {
                return Err(fail(
                    key.into(),
                    format!(
                        "names {configured:?}, but {} has {:?}",
                        self.manifests_dir().display(),
                        actual.as_deref().unwrap_or("no name")
                    ),
                ));
            }
        }
        for (i, scenario) in self.scenarios.iter().enumerate() {
            let max = replica_bounds(scenario, manifests)
                .map_err(|e| fail(format!("scenario[{i}].hpa"), e.to_string()))?
                .1;
            let all = std::iter::once(&scenario.expect)
                .chain(scenario.variants.values().map(|v| &v.expect));
            for e in all.flatten() {
                if let Expectation::MinPeakReplicas(n) = e
                    && *n > max
                {
                    return Err(fail(
                        format!("scenario[{i}].expect.min_peak_replicas"),
                        format!("{n} can never be reached: the HPA allows at most {max}"),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn scenario(&self, name: &str) -> Option<&Scenario> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    /// The local backend's timing: the preset of `[backend.local] timing` (default
    /// `fast`), with `metric_resolution_s` and `sync_period_s` over it when given.
    pub fn local_timing(&self) -> scaleproof_sim::Timing {
        let local = &self.backend.local;
        let mut timing = scaleproof_sim::Timing::preset(local.timing.unwrap_or_default());
        if let Some(s) = local.metric_resolution_s {
            timing.metric_resolution = Duration::from_secs_f64(s.max(0.1));
        }
        if let Some(s) = local.sync_period_s {
            timing.hpa_sync_period = Duration::from_secs_f64(s.max(0.1));
            timing.controller.sync_period = timing.hpa_sync_period;
        }
        timing
    }

    /// Whose per-backend numbers (`[scenario.backend.*]`, `[backend.*]` workload
    /// knobs) a run on `backend` uses: its own, except that the local backend at the
    /// `kind` timing rehearses kind, with kind's.
    pub fn profile(&self, backend: BackendKind) -> BackendKind {
        match (backend, self.backend.local.timing) {
            (BackendKind::Local, Some(scaleproof_sim::TimingPreset::Kind)) => BackendKind::Kind,
            (backend, _) => backend,
        }
    }

    /// The load engine's configuration for `scenario` on `backend`: the scenario's
    /// mode, the target's request and timeout, and the backend's connection reuse.
    pub fn load_config(&self, scenario: &Scenario, backend: BackendKind) -> LoadConfig {
        let mut load = LoadConfig::closed(1, Stop::Requests(1));
        load.mode = scenario.load.clone();
        load.request = self.target.request.clone();
        load.timeout = self.target.timeout;
        // Every backend balances connections, not requests (kube-proxy, or the local
        // backend's NodePort): one request per connection unless the config says
        // otherwise, so pods added by a scale-up get traffic.
        load.requests_per_connection = self.backend.of(backend).requests_per_connection.or(Some(1));
        load.progress = scaleproof_load::Progress::Auto;
        load
    }

    /// Applies a `--set SCENARIO.expect.KEY=VALUE` override (VALUE in TOML syntax),
    /// validated like the file itself, or `--set backend.local.timing=fast|kind`, or
    /// `--set backend.local.seed=N`.
    pub fn apply_set(&mut self, assignment: &str) -> Result<(), ConfigError> {
        let origin = PathBuf::from(format!("--set {assignment}"));
        let fail = |message: String| ConfigError {
            path: origin.clone(),
            line: None,
            column: None,
            key: None,
            message,
        };
        let (lhs, value) = assignment
            .split_once('=')
            .ok_or_else(|| fail("expected SCENARIO.expect.KEY=VALUE".into()))?;
        if lhs.trim() == "backend.local.timing" {
            let preset: scaleproof_sim::TimingPreset =
                <scaleproof_sim::TimingPreset as clap::ValueEnum>::from_str(
                    value.trim().trim_matches('"'),
                    true,
                )
                .map_err(|_| fail(format!("{value:?} is not a timing preset: fast or kind")))?;
            self.backend.local.timing = Some(preset);
            return Ok(());
        }
        if lhs.trim() == "backend.local.seed" {
            let seed = value.trim().parse::<u64>().map_err(|_| {
                fail(format!(
                    "{value:?} is not a seed: a whole number from 0 to {}",
                    u64::MAX
                ))
            })?;
            self.backend.local.seed = Some(seed);
            return Ok(());
        }
        let mut parts = lhs.trim().splitn(3, '.');
        let (Some(name), Some("expect"), Some(key)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(fail("expected SCENARIO.expect.KEY=VALUE".into()));
        };
        let scenario = self
            .scenarios
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| fail(format!("no scenario named {name:?}")))?;
        let snippet = format!("{key} = {}", value.trim());
        let at = Locator {
            path: &origin,
            text: &snippet,
        };
        let raw: RawExpect = toml::from_str(&snippet)
            .map_err(|e| at.error(None, key, e.message().trim().to_string()))?;
        // `KEY=false` on a yes/no expectation switches it off.
        let switched_off: Vec<Expectation> = [
            (&raw.reaches_max_replicas, Expectation::ReachesMaxReplicas),
            (&raw.scaling_limited, Expectation::ScalingLimited),
            (&raw.throughput_plateaus, Expectation::ThroughputPlateaus),
        ]
        .into_iter()
        .filter(|(value, _)| value.as_ref().is_some_and(|v| !*v.get_ref()))
        .map(|(_, expectation)| expectation)
        .collect();
        let max = scenario.hpa.max_replicas;
        let added = validate_expect(
            &at,
            "expect",
            raw,
            max.map(|m| m.max(0) as u32),
            scenario.stages.as_ref(),
        )?;
        // The override holds on every backend, variants included.
        let lists = std::iter::once(&mut scenario.expect)
            .chain(scenario.variants.values_mut().map(|v| &mut v.expect));
        for expect in lists {
            expect.retain(|e| !switched_off.contains(e));
            for new in &added {
                expect.retain(|old| std::mem::discriminant(old) != std::mem::discriminant(new));
                expect.push(new.clone());
            }
        }
        Ok(())
    }
}

/// Longest time any duration in the config may name: a day. Longer is a typo, and
/// `Duration::from_secs_f64` would panic on absurd values.
const MAX_SECONDS: f64 = 86_400.0;

/// `(minReplicas, maxReplicas)` of the manifests' HPA after the scenario's overrides.
pub fn replica_bounds(
    scenario: &Scenario,
    manifests: &crate::manifests::Manifests,
) -> Result<(u32, u32), crate::manifests::ManifestError> {
    let hpa = scenario.hpa.apply_to(&manifests.hpa)?;
    let spec = hpa.spec.as_ref();
    let min = spec.and_then(|s| s.min_replicas).unwrap_or(1);
    let max = spec.map_or(min, |s| s.max_replicas);
    Ok((
        u32::try_from(min).unwrap_or(1),
        u32::try_from(max).unwrap_or(1),
    ))
}

/// `[target.request]` into the load engine's request, and the timeout.
fn validate_request(
    at: &Locator<'_>,
    request: &RawRequest,
) -> Result<(RequestSpec, Duration), ConfigError> {
    if !(request.timeout_s.is_finite()
        && request.timeout_s > 0.0
        && request.timeout_s <= MAX_SECONDS)
    {
        return Err(at.error(
            None,
            "target.request.timeout_s",
            format!("must be a positive number of seconds (at most {MAX_SECONDS})"),
        ));
    }
    let method = Method::from_bytes(request.method.as_bytes()).map_err(|_| {
        at.error(
            None,
            "target.request.method",
            format!("{:?} is not an HTTP method", request.method),
        )
    })?;
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in &request.headers {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .ok()
            .zip(HeaderValue::from_str(value).ok());
        let Some((name_, value_)) = parsed else {
            return Err(at.error(
                None,
                &format!("target.request.headers.{name}"),
                "is not a valid HTTP header name and value",
            ));
        };
        headers.insert(name_, value_);
    }
    if !request.path.starts_with('/') {
        return Err(at.error(
            None,
            "target.request.path",
            format!("must start with `/`, got {:?}", request.path),
        ));
    }
    if serde_json::from_str::<serde_json::Value>(&request.body).is_err() {
        return Err(at.error(None, "target.request.body", "is not valid JSON"));
    }
    let spec = RequestSpec {
        method,
        path: request.path.clone(),
        headers,
        bodies: vec![Bytes::from(request.body.clone())],
    };
    // The engine's own checks (path syntax, framing headers), reported here.
    let mut probe = LoadConfig::closed(1, Stop::Requests(1));
    probe.request = spec.clone();
    probe
        .validate()
        .map_err(|e| at.error(None, "target.request", e.to_string()))?;
    Ok((spec, Duration::from_secs_f64(request.timeout_s)))
}

fn positive(at: &Locator<'_>, key: &str, v: &Spanned<f64>) -> Result<f64, ConfigError> {
    let x = *v.get_ref();
    if x.is_finite() && x > 0.0 && x <= MAX_SECONDS {
        Ok(x)
    } else {
        Err(at.error(
            Some(v.span()),
            key,
            format!("must be a positive number (at most {MAX_SECONDS}), got {x}"),
        ))
    }
}

/// A count takes precedence (an open loop may ramp over a duration and stop after a
/// count); validation guarantees at least one of them.
fn stop(requests: Option<u64>, duration_s: Option<f64>) -> Stop {
    match (requests, duration_s) {
        (Some(n), _) => Stop::Requests(n),
        (None, Some(s)) => Stop::Duration(Duration::from_secs_f64(s)),
        (None, None) => Stop::Requests(scaleproof_load::DEFAULT_REQUESTS),
    }
}

/// `[baseline]` (under `key`) over `base`: fractions 0..=10, slacks 0 or more.
fn margins(
    at: &Locator<'_>,
    key: &str,
    raw: &RawBaseline,
    base: BaselineMargins,
) -> Result<BaselineMargins, ConfigError> {
    let mut m = base;
    let fractions = [
        ("p95_margin", &raw.p95_margin, &mut m.p95),
        (
            "throughput_margin",
            &raw.throughput_margin,
            &mut m.throughput,
        ),
        (
            "first_scale_up_margin",
            &raw.first_scale_up_margin,
            &mut m.first_scale_up,
        ),
    ];
    for (name, value, slot) in fractions {
        if let Some(v) = value {
            let x = *v.get_ref();
            if !(x.is_finite() && (0.0..=10.0).contains(&x)) {
                return Err(at.error(
                    Some(v.span()),
                    &format!("{key}.{name}"),
                    format!("is a fraction between 0 and 10 (0.3 allows 30 % worse), got {x}"),
                ));
            }
            *slot = x;
        }
    }
    let slacks = [
        ("p95_slack_ms", &raw.p95_slack_ms, &mut m.p95_slack_ms),
        (
            "first_scale_up_slack_syncs",
            &raw.first_scale_up_slack_syncs,
            &mut m.first_scale_up_slack_syncs,
        ),
        (
            "first_scale_up_slack_scrapes",
            &raw.first_scale_up_slack_scrapes,
            &mut m.first_scale_up_slack_scrapes,
        ),
    ];
    for (name, value, slot) in slacks {
        if let Some(v) = value {
            let x = *v.get_ref();
            if !(x.is_finite() && x >= 0.0) {
                return Err(at.error(
                    Some(v.span()),
                    &format!("{key}.{name}"),
                    format!("is an absolute allowance, 0 or more, got {x}"),
                ));
            }
            *slot = x;
        }
    }
    Ok(m)
}

fn validate_scenario(at: &Locator<'_>, key: &str, s: RawScenario) -> Result<Scenario, ConfigError> {
    let name = s.name.get_ref().trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(at.error(
            Some(s.name.span()),
            &format!("{key}.name"),
            "must be non-empty and use only letters, digits, `-` and `_`",
        ));
    }
    if let Some(r) = &s.requests
        && *r.get_ref() == 0
    {
        return Err(at.error(
            Some(r.span()),
            &format!("{key}.requests"),
            "must be at least 1",
        ));
    }
    let duration_s = s
        .duration_s
        .as_ref()
        .map(|d| positive(at, &format!("{key}.duration_s"), d))
        .transpose()?;
    let requests = s.requests.as_ref().map(|r| *r.get_ref());
    let staged = match &s.stages {
        None => None,
        Some(raw) => {
            // A staged scenario's load is its stages, and nothing else.
            let conflicts = [
                ("requests", s.requests.as_ref().map(Spanned::span)),
                ("duration_s", s.duration_s.as_ref().map(Spanned::span)),
                ("concurrency", s.concurrency.as_ref().map(Spanned::span)),
                ("rate", s.rate.as_ref().map(Spanned::span)),
                ("ramp_to", s.ramp_to.as_ref().map(Spanned::span)),
            ];
            if let Some((field, span)) = conflicts.into_iter().find(|(_, span)| span.is_some()) {
                return Err(at.error(
                    span,
                    &format!("{key}.{field}"),
                    "conflicts with `stages`: a staged scenario's load is its stages (each with \
                     `duration_s` and a `rate` or `concurrency`)",
                ));
            }
            Some(stages::validate(at, &format!("{key}.stages"), raw)?)
        }
    };
    let load = if let Some(named) = &staged {
        if let Some(m) = &s.max_in_flight
            && *m.get_ref() == 0
        {
            return Err(at.error(
                Some(m.span()),
                &format!("{key}.max_in_flight"),
                "must be at least 1",
            ));
        }
        Mode::Staged {
            stages: named.stages.clone(),
            max_in_flight: s
                .max_in_flight
                .as_ref()
                .map_or(scaleproof_load::DEFAULT_MAX_IN_FLIGHT, |m| *m.get_ref()),
        }
    } else {
        match (&s.rate, &s.concurrency) {
            (Some(rate), concurrency) => {
                if let Some(c) = concurrency {
                    return Err(at.error(Some(c.span()), &format!("{key}.concurrency"), "conflicts with `rate`: a scenario is either closed-loop (concurrency) or open-loop (rate)"));
                }
                let rate_v = positive(at, &format!("{key}.rate"), rate)?;
                let ramp_to = s
                    .ramp_to
                    .as_ref()
                    .map(|r| positive(at, &format!("{key}.ramp_to"), r))
                    .transpose()?;
                if requests.is_none() && duration_s.is_none() {
                    return Err(at.error(
                        Some(rate.span()),
                        key,
                        "an open-loop scenario needs `requests` or `duration_s`",
                    ));
                }
                if let Some(r) = &s.ramp_to
                    && duration_s.is_none()
                {
                    return Err(at.error(
                        Some(r.span()),
                        &format!("{key}.ramp_to"),
                        "needs `duration_s`: the ramp runs over the scenario's duration",
                    ));
                }
                if let (Some(r), Some(_), None) = (&s.requests, duration_s, &s.ramp_to) {
                    return Err(at.error(
                    Some(r.span()),
                    &format!("{key}.requests"),
                    "conflicts with `duration_s`: give one of them (both only with `ramp_to`, to ramp over duration_s and stop after requests)",
                ));
                }
                if let Some(m) = &s.max_in_flight
                    && *m.get_ref() == 0
                {
                    return Err(at.error(
                        Some(m.span()),
                        &format!("{key}.max_in_flight"),
                        "must be at least 1",
                    ));
                }
                // Validated above: a ramp always has a duration to ramp over.
                let rate = match (ramp_to, duration_s) {
                    (Some(to), Some(over)) => Rate::ramp(rate_v, to, Duration::from_secs_f64(over)),
                    _ => Rate::constant(rate_v),
                };
                Mode::Open {
                    rate,
                    stop: stop(requests, duration_s),
                    max_in_flight: s
                        .max_in_flight
                        .as_ref()
                        .map_or(scaleproof_load::DEFAULT_MAX_IN_FLIGHT, |m| *m.get_ref()),
                }
            }
            (None, concurrency) => {
                if let Some(r) = &s.ramp_to {
                    return Err(at.error(
                        Some(r.span()),
                        &format!("{key}.ramp_to"),
                        "needs `rate` (ramps are open-loop)",
                    ));
                }
                let concurrency = match concurrency {
                    Some(c) if *c.get_ref() == 0 => {
                        return Err(at.error(
                            Some(c.span()),
                            &format!("{key}.concurrency"),
                            "must be at least 1",
                        ));
                    }
                    Some(c) => *c.get_ref(),
                    None => 10,
                };
                if requests.is_none() && duration_s.is_none() {
                    return Err(at.error(
                        Some(s.name.span()),
                        key,
                        "needs `requests` or `duration_s`",
                    ));
                }
                if let (Some(r), Some(_)) = (&s.requests, duration_s) {
                    return Err(at.error(
                    Some(r.span()),
                    &format!("{key}.requests"),
                    "conflicts with `duration_s`: a closed loop stops after a count or a time, give one",
                ));
                }
                Mode::Closed {
                    concurrency,
                    stop: stop(requests, duration_s),
                }
            }
        }
    };
    let behavior = match &s.hpa.behavior {
        None => None,
        Some(value) => {
            let typed = behavior::parse(value.get_ref())
                .map_err(|e| at.error(Some(value.span()), &format!("{key}.hpa.behavior"), e))?;
            let errors = behavior::validate(&typed);
            if let Some(first) = errors.first() {
                return Err(at.error(
                    Some(value.span()),
                    &format!("{key}.hpa.behavior"),
                    first.clone(),
                ));
            }
            Some(typed)
        }
    };
    let hpa = HpaOverrides {
        min_replicas: s.hpa.min_replicas,
        max_replicas: s.hpa.max_replicas,
        target_cpu_pct: s.hpa.target_cpu_pct,
        behavior,
    };
    if let (Some(min), Some(max)) = (hpa.min_replicas, hpa.max_replicas)
        && min > max
    {
        return Err(at.error(
            None,
            &format!("{key}.hpa"),
            format!("min_replicas {min} is above max_replicas {max}"),
        ));
    }
    if hpa.max_replicas.is_some_and(|m| m < 1) || hpa.min_replicas.is_some_and(|m| m < 1) {
        return Err(at.error(
            None,
            &format!("{key}.hpa"),
            "replica counts must be at least 1",
        ));
    }
    if hpa.target_cpu_pct.is_some_and(|t| t < 1) {
        return Err(at.error(
            None,
            &format!("{key}.hpa.target_cpu_pct"),
            "must be at least 1 (percent)",
        ));
    }
    let observe_after_s = match &s.observe_after_s {
        Some(v)
            if !(v.get_ref().is_finite() && *v.get_ref() >= 0.0 && *v.get_ref() <= MAX_SECONDS) =>
        {
            return Err(at.error(
                Some(v.span()),
                &format!("{key}.observe_after_s"),
                "must be a non-negative number of seconds",
            ));
        }
        Some(v) => *v.get_ref(),
        None => 0.0,
    };
    let max = hpa.max_replicas.map(|m| m.max(0) as u32);
    let expect = validate_expect(
        at,
        &format!("{key}.expect"),
        s.expect.clone(),
        max,
        staged.as_ref(),
    )?;
    let mut variants = BTreeMap::new();
    for (backend, name_of, variant) in [
        (BackendKind::Local, "local", &s.backend.local),
        (BackendKind::Kind, "kind", &s.backend.kind),
        (BackendKind::Cluster, "cluster", &s.backend.cluster),
    ] {
        let Some(variant) = variant else { continue };
        let merged = validate_scenario(
            at,
            &format!("{key}.backend.{name_of}"),
            s.with_variant(variant),
        )?;
        variants.insert(
            backend,
            Variant {
                load: merged.load,
                stages: merged.stages,
                observe_after_s: merged.observe_after_s,
                expect: merged.expect,
            },
        );
    }
    Ok(Scenario {
        name,
        description: s.description,
        load,
        stages: staged,
        hpa,
        observe_after_s,
        expect,
        variants,
        // Set by the caller, which knows `[baseline]`.
        baseline: BaselineMargins::default(),
    })
}

/// `max_replicas`: the scenario's maxReplicas override, when it has one, so that
/// "reach 3 replicas" under "max 1" is rejected as impossible.
fn validate_expect(
    at: &Locator<'_>,
    key: &str,
    e: RawExpect,
    max_replicas: Option<u32>,
    stages: Option<&NamedStages>,
) -> Result<Vec<Expectation>, ConfigError> {
    let mut out = Vec::new();
    if let Some(v) = &e.min_success_rate {
        let x = *v.get_ref();
        if !(0.0..=1.0).contains(&x) {
            return Err(at.error(
                Some(v.span()),
                &format!("{key}.min_success_rate"),
                format!("is a fraction between 0 and 1, got {x}"),
            ));
        }
        out.push(Expectation::MinSuccessRate(x));
    }
    if let Some(v) = &e.max_p95_ms {
        out.push(Expectation::MaxP95Ms(positive(
            at,
            &format!("{key}.max_p95_ms"),
            v,
        )?));
    }
    if let Some(v) = &e.max_p99_ms {
        out.push(Expectation::MaxP99Ms(positive(
            at,
            &format!("{key}.max_p99_ms"),
            v,
        )?));
    }
    if let Some(v) = &e.min_throughput_per_s {
        out.push(Expectation::MinThroughputPerS(positive(
            at,
            &format!("{key}.min_throughput_per_s"),
            v,
        )?));
    }
    if let (Some(min), Some(max)) = (&e.min_peak_replicas, &e.max_peak_replicas)
        && min.get_ref() > max.get_ref()
    {
        return Err(at.error(
            Some(min.span()),
            &format!("{key}.min_peak_replicas"),
            format!(
                "{} is above max_peak_replicas {}",
                min.get_ref(),
                max.get_ref()
            ),
        ));
    }
    if let Some(v) = &e.min_peak_replicas {
        if *v.get_ref() == 0 {
            return Err(at.error(
                Some(v.span()),
                &format!("{key}.min_peak_replicas"),
                "must be at least 1",
            ));
        }
        if let Some(max) = max_replicas.filter(|m| v.get_ref() > m) {
            return Err(at.error(
                Some(v.span()),
                &format!("{key}.min_peak_replicas"),
                format!(
                    "{} can never be reached: the scenario sets hpa.max_replicas = {max}",
                    v.get_ref()
                ),
            ));
        }
        out.push(Expectation::MinPeakReplicas(*v.get_ref()));
    }
    if let Some(v) = &e.max_peak_replicas {
        if *v.get_ref() == 0 {
            return Err(at.error(
                Some(v.span()),
                &format!("{key}.max_peak_replicas"),
                "must be at least 1",
            ));
        }
        out.push(Expectation::MaxPeakReplicas(*v.get_ref()));
    }
    if e.reaches_max_replicas
        .as_ref()
        .is_some_and(|v| *v.get_ref())
    {
        out.push(Expectation::ReachesMaxReplicas);
    }
    if let Some(v) = &e.scale_up_within_s {
        out.push(Expectation::ScaleUpWithinS(positive(
            at,
            &format!("{key}.scale_up_within_s"),
            v,
        )?));
    }
    if e.scaling_limited.as_ref().is_some_and(|v| *v.get_ref()) {
        out.push(Expectation::ScalingLimited);
    }
    if e.throughput_plateaus.as_ref().is_some_and(|v| *v.get_ref()) {
        out.push(Expectation::ThroughputPlateaus);
    }
    match (&e.scale_down_within_s, &e.scale_down_from) {
        (None, Some(from)) => {
            return Err(at.error(
                Some(from.span()),
                &format!("{key}.scale_down_from"),
                "only means something with `scale_down_within_s`",
            ));
        }
        (Some(within), from) => {
            let within_s = positive(at, &format!("{key}.scale_down_within_s"), within)?;
            let from = match from {
                None => DemandDrop::LoadEnd,
                Some(name) => {
                    let at_s = stages.and_then(|s| s.start_of(name.get_ref()));
                    let Some(at_s) = at_s else {
                        let known: Vec<&str> = stages
                            .into_iter()
                            .flat_map(|s| s.names.iter().flatten())
                            .map(String::as_str)
                            .collect();
                        return Err(at.error(
                            Some(name.span()),
                            &format!("{key}.scale_down_from"),
                            format!(
                                "names no stage of this scenario (named stages: {known:?}); leave \
                                 it out to measure from the load's end"
                            ),
                        ));
                    };
                    DemandDrop::Stage {
                        name: name.get_ref().clone(),
                        at_s,
                    }
                }
            };
            out.push(Expectation::ScaleDownWithinS { within_s, from });
        }
        (None, None) => {}
    }
    if let Some(v) = &e.max_failed_during_scale_down {
        out.push(Expectation::MaxFailedDuringScaleDown(*v.get_ref()));
    }
    if let Some(v) = &e.max_replica_direction_changes {
        out.push(Expectation::MaxReplicaDirectionChanges(*v.get_ref()));
    }
    if let Some(v) = &e.max_cpu_utilization_pct {
        if *v.get_ref() == 0 {
            return Err(at.error(
                Some(v.span()),
                &format!("{key}.max_cpu_utilization_pct"),
                "must be at least 1 (percent of the CPU request)",
            ));
        }
        out.push(Expectation::MaxCpuUtilizationPct(*v.get_ref()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
