//! A scenario's session on the prepared backend: the state of a fresh deploy (the
//! reset), the URL the load goes to, and the autoscaler's timeline while it runs.
//!
//! The same code on every backend: kind, an existing cluster, and the local
//! backend's simulated cluster all answer the Kubernetes API. A scenario handed a
//! namespace of its own (`cluster::fresh`, prepared by the orchestrator) starts at
//! once; otherwise the reset brings the shared namespace's workload back to one
//! ready, idle pod and a fresh HPA (with the scenario's overrides). The observer
//! watches the HPA and polls pods and PodMetrics.

use std::time::{Duration, Instant};

use kube::Client;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{GateError, ScenarioContext};
use crate::cluster::observer::{self, Observation, ObserverConfig};
use crate::cluster::reset::{self, ResetReport, ResetTimings};
use crate::cluster::{self, Target};
use crate::scenario::Scenario;
use crate::timeline::Timeline;
use scaleproof_load::Targets;

/// How often the observer samples the HPA and PodMetrics.
const OBSERVE_EVERY: Duration = Duration::from_secs(1);

/// One scenario on the prepared backend; [`Session::finish`] ends it.
pub struct Session {
    client: Client,
    target: Target,
    load_targets: Targets,
    observing: Option<(CancellationToken, JoinHandle<Observation>)>,
    /// `None` when the namespace was fresh and needed none.
    reset: Option<ResetReport>,
}

impl Session {
    /// Brings the backend to the scenario's starting state.
    pub async fn open(ctx: &ScenarioContext, scenario: &Scenario) -> Result<Self, GateError> {
        let handed = &ctx.handover.target;
        let namespace = &handed.namespace;
        let load_targets = Targets::parse([handed.url.as_str()])
            .map_err(|e| GateError::Setup(format!("load URL {}: {e}", handed.url)))?;
        let client = cluster::connect(&handed.access)
            .await
            .map_err(|e| GateError::Setup(e.to_string()))?;
        let target = Target::from_manifests(&ctx.manifests, namespace)
            .map_err(|e| GateError::Setup(e.to_string()))?;
        if ctx.handover.fresh_namespace {
            tracing::info!("{namespace} was prepared for this scenario alone: no reset");
            return Ok(Session {
                client,
                target,
                load_targets,
                observing: None,
                reset: None,
            });
        }
        let mut base_hpa = ctx.manifests.hpa.clone();
        base_hpa.metadata.namespace = Some(namespace.clone());
        let cpu_request = ctx
            .manifests
            .workload()
            .map_err(|e| GateError::Setup(e.to_string()))?
            .cpu_request_millicores;
        let timings = ResetTimings {
            hpa_sync_period: Duration::from_secs_f64(handed.hpa_sync_period_s.max(0.0)),
            ..ResetTimings::default()
        };
        tracing::info!(
            "resetting {namespace}: HPA deleted for two sync periods, Deployment at 1 ready \
             and idle pod, HPA re-applied"
        );
        let reset = reset::reset(
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
            reset.took.as_secs_f64(),
            reset
                .idle_cpu_millicores
                .map_or("-".into(), |m| format!("{m}m")),
            reset
                .cpu_threshold_millicores
                .map_or("-".into(), |m| format!("{m}m"))
        );
        Ok(Session {
            client,
            target,
            load_targets,
            observing: None,
            reset: Some(reset),
        })
    }

    /// How long the reset to the scenario's starting state took (`None`: a fresh
    /// namespace needed none).
    pub fn reset_s(&self) -> Option<f64> {
        self.reset.as_ref().map(|r| r.took.as_secs_f64())
    }

    /// Where the load goes: the Service's URL.
    pub fn targets(&self) -> Targets {
        self.load_targets.clone()
    }

    /// Starts recording the timeline, with `zero` (load start) as its time origin.
    pub fn start(&mut self, zero: Instant) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(observer::observe(
            self.client.clone(),
            ObserverConfig {
                target: self.target.clone(),
                period: OBSERVE_EVERY,
                started: tokio::time::Instant::from_std(zero),
            },
            stop.clone(),
        ));
        self.observing = Some((stop, task));
    }

    /// Ends the session and returns what the autoscaler did.
    pub async fn finish(self) -> Timeline {
        let Some((stop, task)) = self.observing else {
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
