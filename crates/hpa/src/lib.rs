//! A port of kube-controller-manager's HorizontalPodAutoscaler controller
//! (`pkg/controller/podautoscaler`) for `Resource` and `ContainerResource` metrics on cpu
//! and memory, with `Utilization` and `AverageValue` targets, any number of them per HPA.
//! The local backend scales its replicas with it, so both backends follow the same rules.
//!
//! Pure: no I/O and no clock. The caller passes `now` (an offset from any fixed
//! epoch; pod and metric times use the same epoch) and what the pod lister and the
//! resource metrics API would have returned ([`PodInput`]).
//!
//! - `spec`: HPA manifest → [`HpaSpec`], with the API server's defaults.
//! - `replicas`: the replica calculator for one metric (`GetResourceReplicas`,
//!   `GetRawResourceReplicas`, `groupPods`, `calculateRequests`).
//! - `behavior`: stabilization windows, rate-limit policies, clamping.
//! - `conditions`: the status conditions kept between reconciles.
//! - `status`: what each metric measured ([`MetricStatus`], `status.currentMetrics`).
//! - `quantity`: reading and writing Kubernetes quantities.
//! - `options`: the controller-manager flags ([`ControllerOptions`]).
//! - this file: [`Autoscaler::reconcile`] (upstream `reconcileAutoscaler` and
//!   `computeReplicasForMetrics`).
//!
//! A caller feeding two pods to an HPA that scales on cpu and memory:
//!
//! ```
//! use std::time::Duration;
//! use scaleproof_hpa::{
//!     Autoscaler, ConditionStatus, ContainerInput, ContainerUsage, ControllerOptions,
//!     HpaSpec, PodInput, PodMetrics, PodPhase, ReadyCondition,
//! };
//!
//! let spec = HpaSpec::from_yaml(
//!     "apiVersion: autoscaling/v2
//! kind: HorizontalPodAutoscaler
//! metadata: {name: web}
//! spec:
//!   scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
//!   maxReplicas: 10
//!   metrics:
//!     - type: Resource
//!       resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
//!     - type: Resource
//!       resource: {name: memory, target: {type: AverageValue, averageValue: 200Mi}}
//! ",
//! )?;
//! let mut autoscaler = Autoscaler::new(spec, ControllerOptions::default());
//!
//! const MIB: u64 = 1024 * 1024;
//! let now = Duration::from_secs(600);
//! // What the pod lister and metrics.k8s.io say about one pod: per-container requests
//! // (None = no request) and per-container usage with the sample's time and window.
//! let pod = |name: &str, cpu_m: u64, mem_mib: u64| PodInput {
//!     name: name.to_owned(),
//!     phase: PodPhase::Running,
//!     deleted: false,
//!     ready: Some(ReadyCondition {
//!         status: ConditionStatus::True,
//!         last_transition: Duration::from_secs(20),
//!     }),
//!     start_time: Some(Duration::ZERO),
//!     containers: vec![ContainerInput {
//!         name: "app".into(),
//!         cpu_request_millicores: Some(100),
//!         memory_request_bytes: Some(256 * MIB),
//!     }],
//!     metrics: Some(PodMetrics {
//!         timestamp: now - Duration::from_secs(5),
//!         window: Duration::from_secs(15),
//!         containers: vec![ContainerUsage {
//!             name: "app".into(),
//!             cpu_millicores: Some(cpu_m),
//!             memory_bytes: Some(mem_mib * MIB),
//!         }],
//!     }),
//! };
//!
//! let decision = autoscaler.reconcile(now, 2, &[pod("web-0", 40, 350), pod("web-1", 60, 450)]);
//! // cpu: (40 + 60)m of 200m = 50 % = target -> 2; memory: 400Mi average vs 200Mi -> 4.
//! assert_eq!(decision.desired_replicas, 4);
//! assert_eq!(decision.driving().map(|m| m.spec.label()).as_deref(), Some("memory"));
//! assert_eq!(decision.cpu_utilization_pct(), Some(50));
//! assert_eq!(
//!     decision.rescale_reason.as_deref(),
//!     Some("memory resource above target")
//! );
//! // status.currentMetrics, in spec order, as upstream writes it.
//! let current = decision.current_metrics();
//! let memory = current[1].resource.as_ref().map(|r| &r.current);
//! assert_eq!(
//!     memory.and_then(|c| c.average_value.as_ref()).map(|q| q.0.as_str()),
//!     Some("419430400")
//! );
//! assert!(decision.explanation.contains("comes from memory"));
//! # Ok::<(), scaleproof_hpa::SpecError>(())
//! ```

mod behavior;
mod conditions;
mod options;
mod quantity;
mod replicas;
mod spec;
mod status;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod upstream_hpa_tests;

use std::time::Duration;

use behavior::{History, Normalization};
use conditions::ConditionList;
use replicas::{Basis, MetricError, Proposal, Tolerances};

pub use conditions::{ABLE_TO_SCALE, Condition, SCALING_ACTIVE, SCALING_LIMITED};
pub use options::ControllerOptions;
pub use quantity::parse_milli;
pub use replicas::{
    ConditionStatus, ContainerInput, ContainerUsage, PodInput, PodMetrics, PodPhase, ReadyCondition,
};
pub use spec::{
    Behavior, HpaSpec, MetricSpec, MetricTarget, PolicyKind, ResourceName, ScalingPolicy,
    ScalingRules, SelectPolicy, SpecError,
};
pub use status::{MetricStatus, MetricValue};

/// What one reconcile decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The replica count the target should have now (HPA `status.desiredReplicas`).
    /// Equal to the current count when nothing changes.
    pub desired_replicas: u32,
    /// The highest proposal of the metrics, before stabilization, rate limits and
    /// min/max; `None` when the metrics allowed none.
    pub recommended_replicas: Option<u32>,
    /// Index in [`Decision::metrics`] of the metric whose proposal was followed (upstream
    /// names it in `ScalingActive` and in the rescale event); `None` when no metric
    /// drove the decision (metrics failed, or the count was outside min/max).
    pub driving_metric: Option<usize>,
    /// One entry per `spec.metrics` entry, in spec order (`status.currentMetrics`).
    /// Empty when the reconcile did not look at metrics (0 replicas, or outside
    /// min/max), as upstream clears `currentMetrics` then.
    pub metrics: Vec<MetricStatus>,
    /// All status conditions after this reconcile (`AbleToScale`, `ScalingActive`,
    /// `ScalingLimited`), with upstream's type, reason and message strings.
    pub conditions: Vec<Condition>,
    /// When the decision rescales: upstream's reason in the `SuccessfulRescale` event
    /// (`New size: N; reason: R`), e.g. `memory resource utilization (percentage of
    /// request) above target`, `All metrics below target` or `Current number of replicas
    /// above Spec.MaxReplicas`.
    pub rescale_reason: Option<String>,
    /// One sentence on why this count, naming the driving metric, for reports.
    pub explanation: String,
}

impl Decision {
    /// The status of the metric that drove the decision.
    pub fn driving(&self) -> Option<&MetricStatus> {
        self.driving_metric.and_then(|i| self.metrics.get(i))
    }

    /// The current utilization of the first `Resource` cpu metric with a `Utilization`
    /// target, in percent (what `kubectl get hpa` shows for cpu).
    pub fn cpu_utilization_pct(&self) -> Option<u32> {
        self.metrics
            .iter()
            .filter(|m| m.spec.resource == ResourceName::Cpu && m.spec.container.is_none())
            .find_map(|m| m.current.and_then(|v| v.average_utilization))
    }

    /// `status.currentMetrics` as upstream writes it (see [`MetricStatus::to_k8s`]).
    pub fn current_metrics(&self) -> Vec<k8s_openapi::api::autoscaling::v2::MetricStatus> {
        self.metrics.iter().map(MetricStatus::to_k8s).collect()
    }
}

/// What a reconcile branch settled on, before the rescale bookkeeping.
struct Outcome {
    desired: u32,
    recommended_replicas: Option<u32>,
    driving_metric: Option<usize>,
    metrics: Vec<MetricStatus>,
    /// Upstream's rescale reason, used if the outcome rescales.
    reason: String,
    explanation: String,
}

impl Outcome {
    fn without_metrics(desired: u32, reason: &str, explanation: impl Into<String>) -> Self {
        Self {
            desired,
            recommended_replicas: None,
            driving_metric: None,
            metrics: Vec::new(),
            reason: reason.to_owned(),
            explanation: explanation.into(),
        }
    }
}

/// The controller state for one HPA: its spec, the controller options, and what it
/// remembers between reconciles (recommendations, scale events, conditions).
#[derive(Debug, Clone)]
pub struct Autoscaler {
    spec: HpaSpec,
    options: ControllerOptions,
    history: History,
    conditions: ConditionList,
}

impl Autoscaler {
    /// A controller that has not seen this HPA yet (no recommendations, no scale
    /// events, no conditions), like kube-controller-manager after a restart.
    pub fn new(spec: HpaSpec, options: ControllerOptions) -> Self {
        Self {
            spec,
            options,
            history: History::default(),
            conditions: ConditionList::default(),
        }
    }

    /// The HPA spec this autoscaler follows.
    pub fn spec(&self) -> &HpaSpec {
        &self.spec
    }

    /// Follows a changed spec and keeps what the controller remembers of this HPA:
    /// upstream keys its recommendations and scale events by namespace/name, so an HPA
    /// re-created under the same name before the controller noticed the deletion
    /// inherits them.
    pub fn set_spec(&mut self, spec: HpaSpec) {
        self.spec = spec;
    }

    /// The controller settings in force.
    pub fn options(&self) -> &ControllerOptions {
        &self.options
    }

    /// What the controller remembers (recommendation log, scale events), for the tests
    /// ported from upstream, which inspect and preset it.
    #[cfg(test)]
    pub(crate) fn history(&self) -> &History {
        &self.history
    }

    #[cfg(test)]
    pub(crate) fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }

    /// One pass of upstream `reconcileAutoscaler` at time `now`, for a target that
    /// currently wants `current_replicas` (its scale's `spec.replicas`) and the pods
    /// it has.
    ///
    /// The caller is expected to apply [`Decision::desired_replicas`]. Upstream
    /// records a scale event for the rate-limit policies after a successful scale
    /// update; since this port cannot observe the update, it records the event here
    /// whenever the decision differs from `current_replicas`. A caller that fails to
    /// apply a decision leaves that event behind: for one policy period the rate
    /// limits count it as if the rescale had happened.
    pub fn reconcile(
        &mut self,
        now: Duration,
        current_replicas: u32,
        pods: &[PodInput],
    ) -> Decision {
        self.conditions.set(
            ABLE_TO_SCALE,
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        );
        self.history.record_initial(current_replicas, now);

        let (min, max) = (self.spec.min_replicas, self.spec.max_replicas);
        let outcome = if current_replicas == 0 {
            self.conditions.set(
                SCALING_ACTIVE,
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            );
            Outcome::without_metrics(
                0,
                "",
                "the target has 0 replicas, so autoscaling is disabled",
            )
        } else if current_replicas > max {
            Outcome::without_metrics(
                max,
                "Current number of replicas above Spec.MaxReplicas",
                format!("{current_replicas} replicas are above maxReplicas {max}"),
            )
        } else if current_replicas < min {
            Outcome::without_metrics(
                min,
                "Current number of replicas below Spec.MinReplicas",
                format!("{current_replicas} replicas are below minReplicas {min}"),
            )
        } else {
            self.scale_on_metrics(now, current_replicas, pods)
        };

        let rescale = outcome.desired != current_replicas;
        let (desired_replicas, ending, rescale_reason) = if rescale {
            let desired = outcome.desired;
            self.conditions.set(
                ABLE_TO_SCALE,
                true,
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            );
            let behavior = self.spec.behavior.as_ref();
            self.history
                .record_scale_event(behavior, current_replicas, desired, now);
            (
                desired,
                format!("scaling {current_replicas} -> {desired}"),
                Some(outcome.reason),
            )
        } else {
            (
                current_replicas,
                format!("keeping {current_replicas}"),
                None,
            )
        };
        Decision {
            desired_replicas,
            recommended_replicas: outcome.recommended_replicas,
            driving_metric: outcome.driving_metric,
            metrics: outcome.metrics,
            conditions: self.conditions.to_vec(),
            rescale_reason,
            explanation: format!("{}: {ending}", outcome.explanation),
        }
    }

    /// The metric-driven branch of `reconcileAutoscaler`: upstream
    /// `computeReplicasForMetrics` (a proposal per metric, the highest wins), then
    /// normalization.
    ///
    /// Failed metrics: when every metric failed, or some failed and the valid ones would
    /// not keep the current count (a scale-down), `ScalingActive` takes the first
    /// failure and the target keeps its count; otherwise the valid metrics decide.
    fn scale_on_metrics(&mut self, now: Duration, current: u32, pods: &[PodInput]) -> Outcome {
        let tolerances = self.tolerances();
        let results: Vec<Result<Proposal, MetricError>> = self
            .spec
            .metrics
            .iter()
            .map(|metric| replicas::propose(metric, current, tolerances, pods, now, &self.options))
            .collect();

        // Upstream starts from 0 and replaces it with any later proposal when it is 0,
        // so among proposals of 0 the last one names the metric.
        let mut highest = 0;
        let mut driving_metric = None;
        for (i, result) in results.iter().enumerate() {
            if let Ok(proposal) = result
                && (highest == 0 || proposal.replicas > highest)
            {
                highest = proposal.replicas;
                driving_metric = Some(i);
            }
        }
        let statuses: Vec<MetricStatus> = self
            .spec
            .metrics
            .iter()
            .zip(&results)
            .map(|(metric, result)| metric_status(metric, result))
            .collect();
        let clauses: Vec<String> = self
            .spec
            .metrics
            .iter()
            .zip(&results)
            .zip(&statuses)
            .map(|((metric, result), status)| describe_metric(metric, result, status, current))
            .collect();

        let first_failure = self
            .spec
            .metrics
            .iter()
            .zip(&statuses)
            .find(|(_, status)| status.error.is_some());
        let failed = statuses.iter().filter(|s| s.error.is_some()).count();
        if let Some((metric, status)) = first_failure
            && (failed == statuses.len() || highest < current)
        {
            let reason = if metric.container.is_some() {
                "FailedGetContainerResourceMetric"
            } else {
                "FailedGetResourceMetric"
            };
            let error = status.error.clone().unwrap_or_default();
            self.conditions.set(
                SCALING_ACTIVE,
                false,
                reason,
                format!("the HPA was unable to compute the replica count: {error}"),
            );
            let why = if failed == statuses.len() {
                "no metric is usable"
            } else {
                "a metric failed and the others would scale down, which upstream refuses"
            };
            return Outcome {
                desired: current,
                recommended_replicas: None,
                driving_metric: None,
                metrics: statuses,
                reason: String::new(),
                explanation: format!("{}; {why}", clauses.join("; ")),
            };
        }

        // A metric failing alongside valid ones that keep or raise the count does not
        // stop scaling (upstream proceeds and only reports the error).
        let driver = driving_metric
            .and_then(|i| self.spec.metrics.get(i))
            .cloned();
        let driver_name = driver
            .as_ref()
            .map(MetricSpec::upstream_name)
            .unwrap_or_default();
        self.conditions.set(
            SCALING_ACTIVE,
            true,
            "ValidMetricFound",
            format!(
                "the HPA was able to successfully calculate a replica count from {driver_name}"
            ),
        );
        let reason = if highest > current {
            // Upstream names the metric only when its proposal exceeds 0.
            format!("{driver_name} above target")
        } else if highest < current {
            "All metrics below target".to_owned()
        } else {
            String::new()
        };
        let normalization = self.normalize(now, current, highest);
        let mut explanation = clauses.join("; ");
        if statuses.len() > 1
            && let Some(driver) = &driver
        {
            explanation.push_str(&format!(
                "; the highest proposal, {highest}, comes from {}",
                driver.label()
            ));
        }
        explanation.push_str(&describe_normalization(&normalization, highest));
        Outcome {
            desired: normalization.desired,
            recommended_replicas: Some(highest),
            driving_metric,
            metrics: statuses,
            reason,
            explanation,
        }
    }

    /// Per-direction tolerances from `behavior`, else the controller-wide one.
    fn tolerances(&self) -> Tolerances {
        let default = self.options.tolerance;
        let behavior = self.spec.behavior.as_ref();
        Tolerances {
            scale_down: behavior
                .and_then(|b| b.scale_down.tolerance)
                .unwrap_or(default),
            scale_up: behavior
                .and_then(|b| b.scale_up.tolerance)
                .unwrap_or(default),
        }
    }

    /// Stabilize, rate-limit and clamp a proposal, and set `AbleToScale` and
    /// `ScalingLimited` from the outcome (the tail of upstream's
    /// `normalizeDesiredReplicas[WithBehaviors]`).
    fn normalize(&mut self, now: Duration, current: u32, proposal: u32) -> Normalization {
        let bounds = (self.spec.min_replicas, self.spec.max_replicas);
        let window = self.options.downscale_stabilization_window;
        let normalization = match &self.spec.behavior {
            None => self
                .history
                .normalize_legacy(now, current, proposal, bounds, window),
            Some(behavior) => self
                .history
                .normalize_with_behavior(now, current, proposal, bounds, behavior, window),
        };
        self.conditions.set(
            ABLE_TO_SCALE,
            true,
            normalization.stabilization_reason,
            normalization.stabilization_message,
        );
        self.conditions.set(
            SCALING_LIMITED,
            normalization.limited(),
            normalization.limit_reason,
            normalization.limit_message,
        );
        normalization
    }
}

/// The status entry for one metric's result. The error text is upstream's
/// `computeStatusForResourceMetricGeneric` wrapping, which the condition message quotes.
fn metric_status(metric: &MetricSpec, result: &Result<Proposal, MetricError>) -> MetricStatus {
    match result {
        Ok(proposal) => MetricStatus {
            spec: metric.clone(),
            current: Some(MetricValue {
                average_utilization: proposal.utilization_pct,
                average_value_milli: proposal.average_milli,
            }),
            proposed_replicas: Some(proposal.replicas),
            error: None,
        },
        Err(err) => {
            let what = match metric.target {
                MetricTarget::Utilization(_) => "utilization",
                MetricTarget::AverageValue(_) => "usage",
            };
            MetricStatus {
                spec: metric.clone(),
                current: None,
                proposed_replicas: None,
                error: Some(format!("failed to get {} {what}: {err}", metric.resource)),
            }
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// One metric's clause of the explanation, e.g. "cpu 200% of request vs target 50%
/// (ratio 4.00) over 1 ready pod; ceil(4.00 x 1) = 4 recommended", or
/// "memory: no usable metric (failed to get memory utilization: ...)".
fn describe_metric(
    metric: &MetricSpec,
    result: &Result<Proposal, MetricError>,
    status: &MetricStatus,
    current: u32,
) -> String {
    let (Ok(proposal), Some(measured)) = (result, status.describe_current()) else {
        let error = status.error.as_deref().unwrap_or("unknown error");
        return format!("{}: no usable metric ({error})", metric.label());
    };
    let mut text = format!(
        "{measured} vs target {} (ratio {:.2}) over {}",
        status::describe_target(metric),
        proposal.ratio,
        plural(proposal.ready, "ready pod"),
    );
    let others = [
        (proposal.unready, "unready"),
        (proposal.missing, "without metrics"),
        (proposal.ignored, "ignored"),
    ];
    for (count, what) in others.into_iter().filter(|(count, _)| *count > 0) {
        text.push_str(&format!(", {count} {what}"));
    }
    text.push_str(&match proposal.basis {
        Basis::WithinTolerance => format!("; within tolerance, so {current} recommended"),
        Basis::Proportional => format!(
            "; ceil({:.2} x {}) = {} recommended",
            proposal.ratio, proposal.ready, proposal.replicas
        ),
        Basis::Rebalanced { ratio, pods } => format!(
            "; re-checked with unready/missing pods: ceil({ratio:.2} x {pods}) = {} recommended",
            proposal.replicas
        ),
        Basis::KeptAfterRecheck { ratio } => format!(
            "; re-checked with unready/missing pods the ratio is {ratio:.2}, \
             too small or the other way, so {current} recommended"
        ),
    });
    text
}

/// The stabilization and limit part of the explanation.
fn describe_normalization(normalization: &Normalization, proposal: u32) -> String {
    let mut text = String::new();
    if normalization.stabilized != proposal {
        text.push_str(&format!(
            "; held at {} by the stabilization window ({})",
            normalization.stabilized, normalization.stabilization_reason
        ));
    }
    if normalization.limited() {
        text.push_str(&format!(
            "; limited to {} ({})",
            normalization.desired, normalization.limit_reason
        ));
    }
    text
}
