//! A port of kube-controller-manager's HorizontalPodAutoscaler controller
//! (`pkg/controller/podautoscaler`) for one cpu Resource metric with a Utilization
//! target. The local backend scales its replicas with it, so both backends follow
//! the same rules.
//!
//! Pure: no I/O and no clock. The caller passes `now` (an offset from any fixed
//! epoch; pod and metric times use the same epoch) and what the pod lister and the
//! metrics API would have returned.
//!
//! - `spec`: HPA manifest → [`HpaSpec`], with the API server's defaults.
//! - `replicas`: the replica calculator (`GetResourceReplicas`, `groupPods`).
//! - `behavior`: stabilization windows, rate-limit policies, clamping.
//! - `conditions`: the status conditions kept between reconciles.
//! - `options`: the controller-manager flags ([`ControllerOptions`]).
//! - this file: [`Autoscaler::reconcile`] (upstream `reconcileAutoscaler`).

mod behavior;
mod conditions;
mod options;
mod replicas;
mod spec;

#[cfg(test)]
mod tests;

use std::time::Duration;

use behavior::{History, Normalization};
use conditions::ConditionList;
use replicas::{Basis, Calculation, Tolerances};

pub use conditions::{ABLE_TO_SCALE, Condition, SCALING_ACTIVE, SCALING_LIMITED};
pub use options::ControllerOptions;
pub use replicas::{ConditionStatus, PodInput, PodMetric, PodPhase, ReadyCondition};
pub use spec::{
    Behavior, HpaSpec, PolicyKind, ScalingPolicy, ScalingRules, SelectPolicy, SpecError,
};

/// What one reconcile decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The replica count the target should have now (HPA `status.desiredReplicas`).
    /// Equal to the current count when nothing changes.
    pub desired_replicas: u32,
    /// Average cpu utilization of the ready pods in percent of their requests, when
    /// it could be computed.
    pub utilization_pct: Option<u32>,
    /// The replica calculator's proposal before stabilization, rate limits and
    /// min/max, when metrics allowed one.
    pub recommended_replicas: Option<u32>,
    /// All status conditions after this reconcile (`AbleToScale`, `ScalingActive`,
    /// `ScalingLimited`), with upstream's type, reason and message strings.
    pub conditions: Vec<Condition>,
    /// One sentence on why this count, for reports.
    pub explanation: String,
}

/// What a reconcile branch settled on, before the rescale bookkeeping.
struct Outcome {
    desired: u32,
    utilization_pct: Option<u32>,
    recommended_replicas: Option<u32>,
    explanation: String,
}

impl Outcome {
    fn without_metrics(desired: u32, explanation: impl Into<String>) -> Self {
        Self {
            desired,
            utilization_pct: None,
            recommended_replicas: None,
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

    /// The controller settings in force.
    pub fn options(&self) -> &ControllerOptions {
        &self.options
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
            Outcome::without_metrics(0, "the target has 0 replicas, so autoscaling is disabled")
        } else if current_replicas > max {
            Outcome::without_metrics(
                max,
                format!("{current_replicas} replicas are above maxReplicas {max}"),
            )
        } else if current_replicas < min {
            Outcome::without_metrics(
                min,
                format!("{current_replicas} replicas are below minReplicas {min}"),
            )
        } else {
            self.scale_on_metrics(now, current_replicas, pods)
        };

        let rescale = outcome.desired != current_replicas;
        let (desired_replicas, ending) = if rescale {
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
            (desired, format!("scaling {current_replicas} -> {desired}"))
        } else {
            (current_replicas, format!("keeping {current_replicas}"))
        };
        Decision {
            desired_replicas,
            utilization_pct: outcome.utilization_pct,
            recommended_replicas: outcome.recommended_replicas,
            conditions: self.conditions.to_vec(),
            explanation: format!("{}: {ending}", outcome.explanation),
        }
    }

    /// The metric-driven branch of `reconcileAutoscaler`: upstream
    /// `computeReplicasForMetrics` for the single cpu metric, then normalization.
    /// When no count can be computed the target keeps its current count.
    fn scale_on_metrics(&mut self, now: Duration, current: u32, pods: &[PodInput]) -> Outcome {
        let target_pct = self.spec.target_utilization_pct;
        let calculation = replicas::resource_replicas(
            current,
            target_pct,
            self.tolerances(),
            pods,
            now,
            &self.options,
        );
        match calculation {
            Err(err) => {
                self.conditions.set(
                    SCALING_ACTIVE,
                    false,
                    "FailedGetResourceMetric",
                    format!(
                        "the HPA was unable to compute the replica count: \
                         failed to get cpu utilization: {err}"
                    ),
                );
                Outcome::without_metrics(current, format!("no usable cpu metric ({err})"))
            }
            Ok(calculation) => {
                self.conditions.set(
                    SCALING_ACTIVE,
                    true,
                    "ValidMetricFound",
                    "the HPA was able to successfully calculate a replica count \
                     from cpu resource utilization (percentage of request)",
                );
                let normalization = self.normalize(now, current, calculation.replicas);
                Outcome {
                    desired: normalization.desired,
                    utilization_pct: Some(calculation.utilization_pct),
                    recommended_replicas: Some(calculation.replicas),
                    explanation: describe(&calculation, &normalization, target_pct, current),
                }
            }
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

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The explanation of a metric-based decision, e.g. "cpu 200% of request vs target
/// 50% (ratio 4.00) over 1 ready pod; ceil(4.00 x 1) = 4; limited to 3 (TooManyReplicas)".
fn describe(
    calculation: &Calculation,
    normalization: &Normalization,
    target_pct: u32,
    current: u32,
) -> String {
    let mut text = format!(
        "cpu {}% of request vs target {target_pct}% (ratio {:.2}) over {}",
        calculation.utilization_pct,
        calculation.ratio,
        plural(calculation.ready, "ready pod"),
    );
    let others = [
        (calculation.unready, "unready"),
        (calculation.missing, "without metrics"),
        (calculation.ignored, "ignored"),
    ];
    for (count, what) in others.into_iter().filter(|(count, _)| *count > 0) {
        text.push_str(&format!(", {count} {what}"));
    }
    text.push_str(&match calculation.basis {
        Basis::WithinTolerance => format!("; within tolerance, so {current} recommended"),
        Basis::Proportional => format!(
            "; ceil({:.2} x {}) = {} recommended",
            calculation.ratio, calculation.ready, calculation.replicas
        ),
        Basis::Rebalanced { ratio, pods } => format!(
            "; re-checked with unready/missing pods: ceil({ratio:.2} x {pods}) = {} recommended",
            calculation.replicas
        ),
        Basis::KeptAfterRecheck { ratio } => format!(
            "; re-checked with unready/missing pods the ratio is {ratio:.2}, \
             too small or the other way, so {current} recommended"
        ),
    });
    if normalization.stabilized != calculation.replicas {
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
