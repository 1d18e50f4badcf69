//! The gate: runs one scenario of `stress.toml` on a backend and judges it.
//!
//! `cargo xtask stress` sets a backend up, then runs each scenario as a Rust
//! integration test (`tests/`), handing the run's settings over through the
//! environment ([`GateEnv`]). Each test calls [`run_scenario`] and writes its
//! [`ScenarioReport`] to `<out>/scenarios/<name>.json`, which xtask collects into
//! the final reports. Both backends produce the same timeline type, so nothing here
//! after the backend split cares which one ran.

mod cluster_run;
mod local_run;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use tokio_util::sync::CancellationToken;

use crate::manifests::Manifests;
use crate::report::ScenarioReport;
use crate::scenario::{LoadShape, Scenario, StressConfig};
use crate::timeline::Timeline;
use crate::verdict::{self, ReplicaBounds};
use scaleproof_load::{self as load, LoadConfig, LoadResult, Mode, Rate, RequestSpec, Stop};

/// Environment variables through which xtask hands a run to the scenario tests.
pub mod vars {
    /// `local`, `kind` or `cluster`.
    pub const BACKEND: &str = "SCALEPROOF_BACKEND";
    /// Path of the stress config.
    pub const CONFIG: &str = "SCALEPROOF_CONFIG";
    /// `--set` overrides, one per line.
    pub const SET: &str = "SCALEPROOF_SET";
    /// Artifacts directory.
    pub const OUT: &str = "SCALEPROOF_OUT";
    /// Local backend: the service executable.
    pub const SERVER_BIN: &str = "SCALEPROOF_SERVER_BIN";
    /// Cluster backends: where load goes.
    pub const URL: &str = "SCALEPROOF_URL";
    /// Cluster backends: the namespace the workload was deployed into
    /// (default: `target.namespace` of the config).
    pub const NAMESPACE: &str = "SCALEPROOF_NAMESPACE";
    /// Cluster backends: kubeconfig context (current context when unset).
    pub const KUBE_CONTEXT: &str = "SCALEPROOF_KUBE_CONTEXT";
    /// A scenario without a dedicated test: run by the `custom_scenario` test.
    pub const SCENARIO: &str = "SCALEPROOF_SCENARIO";
}

/// Which engine runs the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Replicas as local processes under cgroup CPU limits, the HPA port.
    Local,
    /// A kind cluster created by xtask.
    Kind,
    /// An existing cluster (current kubeconfig context or `--context`).
    Cluster,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Kind => "kind",
            BackendKind::Cluster => "cluster",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(BackendKind::Local),
            "kind" => Some(BackendKind::Kind),
            "cluster" => Some(BackendKind::Cluster),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{0} is not set: run the scenarios through `cargo xtask stress`, which sets it")]
    MissingVar(&'static str),
    #[error("{var}={value:?}: {message}")]
    BadVar {
        var: &'static str,
        value: String,
        message: String,
    },
    #[error(transparent)]
    Config(#[from] crate::scenario::ConfigError),
    #[error("{path}: {source}")]
    Manifests {
        path: PathBuf,
        #[source]
        source: Box<crate::manifests::ManifestError>,
    },
    #[error("no scenario named {0:?} in the config")]
    UnknownScenario(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A run's settings, as handed over by xtask.
#[derive(Debug, Clone)]
pub struct GateEnv {
    pub backend: BackendKind,
    pub config: StressConfig,
    pub manifests: Manifests,
    pub out_dir: PathBuf,
    pub server_bin: Option<PathBuf>,
    pub url: Option<String>,
    pub kube_context: Option<String>,
    /// Cluster backends: where the workload runs.
    pub namespace: String,
}

impl GateEnv {
    /// Reads the hand-over variables ([`vars`]) and loads the config and manifests.
    pub fn from_env() -> Result<Self, GateError> {
        let get = |var: &'static str| std::env::var(var).ok().filter(|v| !v.is_empty());
        let need = |var: &'static str| get(var).ok_or(GateError::MissingVar(var));
        let backend_name = need(vars::BACKEND)?;
        let backend = BackendKind::parse(&backend_name).ok_or_else(|| GateError::BadVar {
            var: vars::BACKEND,
            value: backend_name.clone(),
            message: "expected local, kind or cluster".into(),
        })?;
        let mut config = StressConfig::load(Path::new(&need(vars::CONFIG)?))?;
        for assignment in get(vars::SET)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            config.apply_set(assignment)?;
        }
        let dir = config.manifests_dir();
        let manifests = Manifests::load(&dir).map_err(|source| GateError::Manifests {
            path: dir,
            source: Box::new(source),
        })?;
        config.check_against(&manifests)?;
        let namespace = get(vars::NAMESPACE).unwrap_or_else(|| config.target.namespace.clone());
        Ok(GateEnv {
            backend,
            config,
            manifests,
            out_dir: PathBuf::from(need(vars::OUT)?),
            server_bin: get(vars::SERVER_BIN).map(PathBuf::from),
            url: get(vars::URL),
            kube_context: get(vars::KUBE_CONTEXT),
            namespace,
        })
    }

    pub fn scenario(&self, name: &str) -> Result<&Scenario, GateError> {
        self.config
            .scenario(name)
            .ok_or_else(|| GateError::UnknownScenario(name.to_string()))
    }

    /// The HPA's replica bounds for `scenario`, after its overrides (checked when the
    /// config was loaded, so the fallback never shows).
    pub fn bounds(&self, scenario: &Scenario) -> ReplicaBounds {
        let (min, max) =
            crate::scenario::replica_bounds(scenario, &self.manifests).unwrap_or((1, 1));
        ReplicaBounds { min, max }
    }
}

/// Where a scenario's report goes, for xtask to collect.
pub fn scenario_report_path(out_dir: &Path, name: &str) -> PathBuf {
    out_dir.join("scenarios").join(format!("{name}.json"))
}

/// Writes a scenario's report where xtask collects it.
pub fn write_scenario_report(
    out_dir: &Path,
    report: &ScenarioReport,
) -> Result<PathBuf, GateError> {
    let path = scenario_report_path(out_dir, &report.name);
    let write = |path: &Path, text: String| -> Result<(), GateError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| GateError::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(path, text).map_err(|source| GateError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    let json = serde_json::to_string_pretty(report).map_err(|e| GateError::Write {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    write(&path, json)?;
    Ok(path)
}

/// Reads what [`write_scenario_report`] wrote.
pub fn read_scenario_report(path: &Path) -> Result<ScenarioReport, GateError> {
    let text = std::fs::read_to_string(path).map_err(|source| GateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| GateError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// Runs `scenario` on the backend of `env` and judges it. Infrastructure failures are
/// reported in [`ScenarioReport::error`], never panics.
pub async fn run_scenario(
    env: &GateEnv,
    scenario: &Scenario,
    cancel: CancellationToken,
) -> ScenarioReport {
    let started = Instant::now();
    let bounds = env.bounds(scenario);
    let measured = match env.backend {
        BackendKind::Local => local_run::run(env, scenario, &cancel).await,
        BackendKind::Kind | BackendKind::Cluster => cluster_run::run(env, scenario, &cancel).await,
    };
    let (load, timeline, error) = match measured {
        Ok(Measured { load, timeline }) => (Some(load), timeline, None),
        Err(Failed { error, timeline }) => (None, timeline, Some(error)),
    };
    let verdicts = match &load {
        Some(load) => verdict::judge(&scenario.expect, load, &timeline, bounds),
        None => Vec::new(),
    };
    ScenarioReport {
        name: scenario.name.clone(),
        description: scenario.description.clone(),
        bounds,
        duration_s: started.elapsed().as_secs_f64(),
        load,
        timeline,
        verdicts,
        error,
    }
}

/// What a backend measured for one scenario.
struct Measured {
    load: LoadResult,
    timeline: Timeline,
}

/// Why a backend could not measure, and what it had seen until then.
struct Failed {
    error: String,
    timeline: Timeline,
}

impl Failed {
    fn new(error: impl std::fmt::Display) -> Self {
        Failed {
            error: error.to_string(),
            timeline: Timeline::default(),
        }
    }
}

/// The load engine's configuration for a scenario on `backend`.
pub fn load_config(
    config: &StressConfig,
    scenario: &Scenario,
    backend: BackendKind,
) -> Result<LoadConfig, String> {
    let stop = |requests: Option<u64>, duration_s: Option<f64>| match (requests, duration_s) {
        (Some(n), _) => Stop::Requests(n),
        (None, Some(s)) => Stop::Duration(Duration::from_secs_f64(s)),
        (None, None) => Stop::Requests(load::DEFAULT_REQUESTS),
    };
    let mode = match &scenario.load {
        LoadShape::Closed {
            requests,
            duration_s,
            concurrency,
        } => Mode::Closed {
            concurrency: *concurrency,
            stop: stop(*requests, *duration_s),
        },
        LoadShape::Open {
            rate,
            ramp_to,
            requests,
            duration_s,
            max_in_flight,
        } => {
            let stop = stop(*requests, *duration_s);
            // Validation guarantees a ramp has a duration to ramp over.
            let rate = match (ramp_to, duration_s) {
                (Some(to), Some(over)) => Rate::ramp(*rate, *to, Duration::from_secs_f64(*over)),
                _ => Rate::constant(*rate),
            };
            Mode::Open {
                rate,
                stop,
                max_in_flight: max_in_flight.unwrap_or(load::DEFAULT_MAX_IN_FLIGHT),
            }
        }
    };
    let req = &config.target.request;
    let method = Method::from_bytes(req.method.as_bytes())
        .map_err(|e| format!("target.request.method {:?}: {e}", req.method))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in &req.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("target.request.headers {name:?}: {e}"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| format!("target.request.headers {name}: {e}"))?;
        headers.insert(name, value);
    }
    let mut load = LoadConfig {
        mode,
        ..LoadConfig::default()
    };
    load.request = RequestSpec {
        method,
        path: req.path.clone(),
        headers,
        bodies: vec![Bytes::from(req.body.clone())],
    };
    load.timeout = Duration::from_secs_f64(req.timeout_s);
    load.requests_per_connection = match backend {
        BackendKind::Local => config.backend.local.requests_per_connection,
        BackendKind::Kind => config.backend.kind.requests_per_connection.or(Some(1)),
        BackendKind::Cluster => config.backend.cluster.requests_per_connection.or(Some(1)),
    };
    load.progress = load::Progress::Auto;
    Ok(load)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> StressConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stress.toml");
        StressConfig::load(&path).expect("stress.toml")
    }

    #[test]
    fn scenarios_become_engine_configs_with_the_request_of_the_config() {
        let config = config();
        let scenario = config.scenario("scale-up-1000").expect("scenario");
        let load = load_config(&config, scenario, BackendKind::Local).expect("load config");
        assert_eq!(
            load.mode,
            Mode::Closed {
                concurrency: 10,
                stop: Stop::Requests(1000)
            }
        );
        assert_eq!(load.request.method, Method::POST);
        assert_eq!(load.request.path, "/predict");
        assert_eq!(load.timeout, Duration::from_secs(10));
        load.validate().expect("valid");
    }

    #[test]
    fn clusters_reconnect_per_request_so_new_pods_get_traffic() {
        let config = config();
        let scenario = config.scenario("bottleneck-2000").expect("scenario");
        let local = load_config(&config, scenario, BackendKind::Local).expect("local");
        let kind = load_config(&config, scenario, BackendKind::Kind).expect("kind");
        assert_eq!(local.requests_per_connection, None);
        assert_eq!(kind.requests_per_connection, Some(1));
    }

    #[test]
    fn open_loop_ramps_over_the_duration() {
        let text = "[[scenario]]\nname = \"o\"\nrate = 10.0\nramp_to = 50.0\nduration_s = 20.0\n";
        let config = StressConfig::parse(Path::new("t.toml"), text).expect("config");
        let load = load_config(&config, &config.scenarios[0], BackendKind::Local).expect("load");
        match load.mode {
            Mode::Open { rate, stop, .. } => {
                assert_eq!(rate, Rate::ramp(10.0, 50.0, Duration::from_secs(20)));
                assert_eq!(stop, Stop::Duration(Duration::from_secs(20)));
            }
            other => panic!("{other:?}"),
        }
    }
}
