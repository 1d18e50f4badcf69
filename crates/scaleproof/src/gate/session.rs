//! A scenario's session on the prepared backend: the scenario's starting state, the
//! targets the load goes to, and the autoscaler's timeline while it runs.
//!
//! - Local: fresh replicas for every scenario (the same starting state each time, as
//!   the cluster backends get by resetting), scaled by the local controller, which
//!   records the timeline itself.
//! - Kind and cluster: the workload is reset to one ready pod and a fresh HPA (with
//!   the scenario's overrides); the observer watches the HPA and PodMetrics.

use std::time::{Duration, Instant};

use kube::Client;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::handover::Target as HandoverTarget;
use super::{GateError, ScenarioContext};
use crate::cluster::observer::{self, Observation, ObserverConfig};
use crate::cluster::reset::{self, ResetReport, ResetTimings};
use crate::cluster::{self, Target};
use crate::local::{CpuLimitMode, LocalCluster, LocalSettings};
use crate::scenario::Scenario;
use crate::timeline::Timeline;
use scaleproof_load::Targets;

/// How often the observer samples the HPA and PodMetrics.
const OBSERVE_EVERY: Duration = Duration::from_secs(1);

/// One scenario on one backend; [`Session::finish`] ends it.
pub enum Session {
    Local(LocalCluster),
    Cluster(Box<ClusterSession>),
}

/// The kube side of a session.
pub struct ClusterSession {
    client: Client,
    target: Target,
    load_targets: Targets,
    observing: Option<(CancellationToken, JoinHandle<Observation>)>,
    reset: Option<ResetReport>,
}

impl Session {
    /// Brings the backend to the scenario's starting state.
    pub async fn open(ctx: &ScenarioContext, scenario: &Scenario) -> Result<Self, GateError> {
        match &ctx.handover.target {
            HandoverTarget::Local { server_bin } => {
                let backend = &ctx.config.backend.local;
                let mut settings = LocalSettings::new(server_bin.clone(), ctx.manifests.clone());
                settings.env_overrides = backend.env_overrides();
                settings.hpa_overrides = scenario.hpa;
                if let Some(s) = backend.metric_resolution_s {
                    settings.metric_resolution = Duration::from_secs_f64(s.max(0.1));
                }
                if let Some(s) = backend.sync_period_s {
                    settings.controller.sync_period = Duration::from_secs_f64(s.max(0.1));
                }
                let log_dir = ctx.handover.out_dir.join("logs").join(&scenario.name);
                match std::fs::create_dir_all(&log_dir) {
                    Ok(()) => settings.log_dir = Some(log_dir),
                    Err(e) => tracing::warn!(
                        "cannot create {} ({e}); replica logs are discarded",
                        log_dir.display()
                    ),
                }
                let local = LocalCluster::start(settings)
                    .await
                    .map_err(|e| GateError::Setup(e.to_string()))?;
                if let CpuLimitMode::Uncapped { reason } = local.cpu_limit() {
                    tracing::warn!(
                        "replicas run WITHOUT a CPU limit ({reason}); figures do not describe capped pods"
                    );
                }
                Ok(Session::Local(local))
            }
            HandoverTarget::Cluster {
                context,
                namespace,
                url,
                hpa_sync_period_s,
            } => {
                let load_targets = Targets::parse([url.as_str()])
                    .map_err(|e| GateError::Setup(format!("load URL {url}: {e}")))?;
                let client = cluster::connect(context.as_deref())
                    .await
                    .map_err(|e| GateError::Setup(e.to_string()))?;
                let target = Target::from_manifests(&ctx.manifests, namespace)
                    .map_err(|e| GateError::Setup(e.to_string()))?;
                let mut base_hpa = ctx.manifests.hpa.clone();
                base_hpa.metadata.namespace = Some(namespace.clone());
                let cpu_request = ctx
                    .manifests
                    .workload()
                    .map_err(|e| GateError::Setup(e.to_string()))?
                    .cpu_request_millicores;
                let timings = ResetTimings {
                    hpa_sync_period: Duration::from_secs_f64(hpa_sync_period_s.max(0.0)),
                    ..ResetTimings::default()
                };
                tracing::info!(
                    "resetting {namespace}: HPA deleted for two sync periods, Deployment at 1 \
                     ready and idle pod, HPA re-applied"
                );
                let report = reset::reset(
                    &client,
                    &target,
                    &base_hpa,
                    &scenario.hpa,
                    cpu_request,
                    timings,
                )
                .await
                .map_err(|e| GateError::Cluster(format!("reset before the scenario: {e}")))?;
                tracing::info!(
                    "reset took {:.1} s (pod CPU {} against a target of {})",
                    report.took.as_secs_f64(),
                    report
                        .idle_cpu_millicores
                        .map_or("-".into(), |m| format!("{m}m")),
                    report
                        .cpu_threshold_millicores
                        .map_or("-".into(), |m| format!("{m}m"))
                );
                Ok(Session::Cluster(Box::new(ClusterSession {
                    client,
                    target,
                    load_targets,
                    observing: None,
                    reset: Some(report),
                })))
            }
        }
    }

    /// How long the reset to the scenario's starting state took (cluster backends).
    pub fn reset_s(&self) -> Option<f64> {
        match self {
            Session::Local(_) => None,
            Session::Cluster(c) => c.reset.as_ref().map(|r| r.took.as_secs_f64()),
        }
    }

    /// Where the load goes: the local replicas' endpoint set (it follows the ready
    /// replicas), or the Service's URL.
    pub fn targets(&self) -> Targets {
        match self {
            Session::Local(local) => local.targets(),
            Session::Cluster(c) => c.load_targets.clone(),
        }
    }

    /// Starts recording the timeline, with `zero` (load start) as its time origin.
    pub fn start(&mut self, zero: Instant) {
        // The local controller records from its own start and is shifted to `zero`
        // when it stops.
        if let Session::Cluster(c) = self {
            let stop = CancellationToken::new();
            let task = tokio::spawn(observer::observe(
                c.client.clone(),
                ObserverConfig {
                    target: c.target.clone(),
                    period: OBSERVE_EVERY,
                    started: tokio::time::Instant::from_std(zero),
                },
                stop.clone(),
            ));
            c.observing = Some((stop, task));
        }
    }

    /// Ends the session and returns what the autoscaler did, times relative to `zero`.
    pub async fn finish(self, zero: Instant) -> Timeline {
        match self {
            Session::Local(local) => local.stop(zero).await.timeline,
            Session::Cluster(c) => {
                let Some((stop, task)) = c.observing else {
                    return Timeline::default();
                };
                stop.cancel();
                let observation = task.await.unwrap_or_default();
                for warning in &observation.warnings {
                    tracing::warn!("observer: {warning}");
                }
                observation.timeline
            }
        }
    }
}
