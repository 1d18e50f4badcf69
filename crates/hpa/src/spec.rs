//! Conversion of an `autoscaling/v2` HorizontalPodAutoscaler into the subset the port
//! supports: one `Resource` metric on `cpu` with a `Utilization` target.
//!
//! The API server fills defaults before the controller ever sees an HPA; this module
//! applies the same ones (upstream `SetDefaults_HorizontalPodAutoscaler` and
//! `GenerateHPAScaleUpRules` / `GenerateHPAScaleDownRules` in
//! `pkg/apis/autoscaling/v2/defaults.go`) so a manifest means the same thing here as on a
//! cluster.

use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, MetricSpec,
};

/// Target utilization the API server puts in when `spec.metrics` is empty
/// (upstream `autoscaling.DefaultCPUUtilization`).
const DEFAULT_CPU_UTILIZATION_PCT: u32 = 80;
/// Upper bound the API server accepts for `stabilizationWindowSeconds`.
const MAX_STABILIZATION_WINDOW_S: i32 = 3600;
/// Upper bound the API server accepts for a policy's `periodSeconds`.
const MAX_POLICY_PERIOD_S: i32 = 1800;

/// Why an HPA manifest cannot drive this port.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The manifest has no `spec`.
    #[error("the HorizontalPodAutoscaler has no spec")]
    MissingSpec,
    /// A metric type other than `Resource` (Pods, Object, External, ContainerResource).
    #[error(
        "unsupported metric type {0:?}: only type Resource (cpu, Utilization target) is supported"
    )]
    UnsupportedMetricType(String),
    /// A `Resource` metric on something other than cpu (memory, ...).
    #[error("unsupported resource metric {0:?}: only cpu is supported")]
    UnsupportedResource(String),
    /// A cpu target other than `Utilization` (`AverageValue`, `Value`).
    #[error(
        "unsupported cpu target type {0:?}: only Utilization (averageUtilization) is supported"
    )]
    UnsupportedTargetType(String),
    /// More than one metric: upstream would take the highest proposal of all.
    #[error("only one metric is supported, the HPA lists {0}")]
    TooManyMetrics(usize),
    /// A field the API server would reject or that this port cannot honour.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The YAML is not a HorizontalPodAutoscaler.
    #[error("cannot parse the HorizontalPodAutoscaler YAML")]
    Yaml(#[from] serde_norway::Error),
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The parts of an HPA spec the controller acts on, with API-server defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaSpec {
    /// `spec.minReplicas` (defaults to 1).
    pub min_replicas: u32,
    /// `spec.maxReplicas`.
    pub max_replicas: u32,
    /// `averageUtilization` of the cpu Resource metric, in percent of the request.
    pub target_utilization_pct: u32,
    /// `spec.behavior`; `None` selects the controller's legacy normalization path.
    pub behavior: Option<Behavior>,
}

/// `spec.behavior` with every unset field defaulted, as the API server stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// `behavior.scaleUp`, or upstream's scale-up defaults when absent.
    pub scale_up: ScalingRules,
    /// `behavior.scaleDown`, or upstream's scale-down defaults when absent.
    pub scale_down: ScalingRules,
}

/// Rules for one scaling direction (`HPAScalingRules`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRules {
    /// Stabilization window. `None` means "the controller's
    /// `--horizontal-pod-autoscaler-downscale-stabilization`": the API server leaves an
    /// unset scale-down window empty and the controller fills it in at reconcile time.
    pub stabilization_window: Option<Duration>,
    /// `selectPolicy` (default `Max`).
    pub select_policy: SelectPolicy,
    /// `policies`: rate limits, each over its own period.
    pub policies: Vec<ScalingPolicy>,
    /// Per-direction tolerance (`tolerance`, beta `HPAConfigurableTolerance`); `None`
    /// falls back to the controller-wide tolerance.
    pub tolerance: Option<f64>,
}

/// `selectPolicy`: which policy's limit wins when several apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectPolicy {
    /// The policy allowing the largest change (default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction at all.
    Disabled,
}

/// One `HPAScalingPolicy`: at most `value` pods or percent per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalingPolicy {
    /// `type`: whether `value` counts pods or percent of the replicas.
    pub kind: PolicyKind,
    /// `value`: pods or percent allowed per period.
    pub value: u32,
    /// `periodSeconds`: how far back scale events count against `value`.
    pub period: Duration,
}

/// `HPAScalingPolicy.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Add or remove at most `value` pods per period.
    Pods,
    /// Add or remove at most `value` percent of the replicas per period.
    Percent,
}

impl ScalingRules {
    /// Upstream `defaultHPAScaleUpRules`: no window, 4 pods or 100 % per 15 s, Max.
    pub fn default_scale_up() -> Self {
        Self {
            stabilization_window: Some(Duration::ZERO),
            select_policy: SelectPolicy::Max,
            policies: vec![
                ScalingPolicy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period: Duration::from_secs(15),
                },
                ScalingPolicy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period: Duration::from_secs(15),
                },
            ],
            tolerance: None,
        }
    }

    /// Upstream `defaultHPAScaleDownRules`: the controller's window, 100 % per 15 s, Max.
    pub fn default_scale_down() -> Self {
        Self {
            stabilization_window: None,
            select_policy: SelectPolicy::Max,
            policies: vec![ScalingPolicy {
                kind: PolicyKind::Percent,
                value: 100,
                period: Duration::from_secs(15),
            }],
            tolerance: None,
        }
    }

    /// Upstream `copyHPAScalingRules`: every field the manifest sets replaces the
    /// default; the others keep it.
    fn with_overrides(mut self, rules: &HPAScalingRules, field: &str) -> Result<Self, SpecError> {
        if let Some(policy) = &rules.select_policy {
            self.select_policy = parse_select_policy(policy, &format!("{field}.selectPolicy"))?;
        }
        if let Some(seconds) = rules.stabilization_window_seconds {
            if !(0..=MAX_STABILIZATION_WINDOW_S).contains(&seconds) {
                return Err(invalid(
                    format!("{field}.stabilizationWindowSeconds"),
                    format!("{seconds} is outside 0..={MAX_STABILIZATION_WINDOW_S}"),
                ));
            }
            self.stabilization_window = Some(Duration::from_secs(seconds.unsigned_abs().into()));
        }
        if let Some(policies) = &rules.policies {
            if policies.is_empty() {
                return Err(invalid(
                    format!("{field}.policies"),
                    "must list at least one policy",
                ));
            }
            self.policies = policies
                .iter()
                .enumerate()
                .map(|(i, p)| parse_policy(p, &format!("{field}.policies[{i}]")))
                .collect::<Result<_, _>>()?;
        }
        if let Some(quantity) = &rules.tolerance {
            self.tolerance = Some(parse_tolerance(&quantity.0, &format!("{field}.tolerance"))?);
        }
        Ok(self)
    }
}

fn parse_select_policy(value: &str, field: &str) -> Result<SelectPolicy, SpecError> {
    match value {
        "Max" => Ok(SelectPolicy::Max),
        "Min" => Ok(SelectPolicy::Min),
        "Disabled" => Ok(SelectPolicy::Disabled),
        other => Err(invalid(
            field,
            format!("{other:?} is not one of Max, Min, Disabled"),
        )),
    }
}

fn parse_policy(policy: &HPAScalingPolicy, field: &str) -> Result<ScalingPolicy, SpecError> {
    let kind = match policy.type_.as_str() {
        "Pods" => PolicyKind::Pods,
        "Percent" => PolicyKind::Percent,
        other => {
            return Err(invalid(
                format!("{field}.type"),
                format!("{other:?} is not one of Pods, Percent"),
            ));
        }
    };
    if policy.value <= 0 {
        return Err(invalid(
            format!("{field}.value"),
            format!("{} must be greater than zero", policy.value),
        ));
    }
    if !(1..=MAX_POLICY_PERIOD_S).contains(&policy.period_seconds) {
        return Err(invalid(
            format!("{field}.periodSeconds"),
            format!(
                "{} is outside 1..={MAX_POLICY_PERIOD_S}",
                policy.period_seconds
            ),
        ));
    }
    Ok(ScalingPolicy {
        kind,
        value: policy.value.unsigned_abs(),
        period: Duration::from_secs(policy.period_seconds.unsigned_abs().into()),
    })
}

/// Reads a tolerance quantity such as `0.05`, `5e-2` or `50m`. Binary and large SI
/// suffixes make no sense for a ratio and are rejected rather than guessed at.
fn parse_tolerance(quantity: &str, field: &str) -> Result<f64, SpecError> {
    let (number, scale) = match quantity.strip_suffix('m') {
        Some(milli) => (milli, 1000.0),
        None => (quantity, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value / scale),
        _ => Err(invalid(
            field,
            format!("{quantity:?} is not a non-negative decimal quantity"),
        )),
    }
}

/// Extracts the cpu utilization target from the single supported metric.
fn cpu_utilization_target(metric: &MetricSpec) -> Result<u32, SpecError> {
    if metric.type_ != "Resource" {
        return Err(SpecError::UnsupportedMetricType(metric.type_.clone()));
    }
    let source = metric
        .resource
        .as_ref()
        .ok_or_else(|| invalid("spec.metrics[0].resource", "missing for type Resource"))?;
    if source.name != "cpu" {
        return Err(SpecError::UnsupportedResource(source.name.clone()));
    }
    let target = &source.target;
    // Upstream checks averageValue before averageUtilization, so a target carrying
    // both is an AverageValue target there; refuse it here rather than disagree.
    if target.type_ != "Utilization" || target.average_value.is_some() {
        return Err(SpecError::UnsupportedTargetType(target.type_.clone()));
    }
    match target.average_utilization {
        Some(pct) if pct > 0 => Ok(pct.unsigned_abs()),
        Some(pct) => Err(invalid(
            "spec.metrics[0].resource.target.averageUtilization",
            format!("{pct} must be greater than zero"),
        )),
        None => Err(invalid(
            "spec.metrics[0].resource.target.averageUtilization",
            "missing for a Utilization target",
        )),
    }
}

impl TryFrom<&HorizontalPodAutoscaler> for HpaSpec {
    type Error = SpecError;

    fn try_from(hpa: &HorizontalPodAutoscaler) -> Result<Self, Self::Error> {
        let spec = hpa.spec.as_ref().ok_or(SpecError::MissingSpec)?;

        let min_replicas = spec.min_replicas.unwrap_or(1);
        // minReplicas 0 needs the alpha HPAScaleToZero gate, which this port does not model.
        if min_replicas < 1 {
            return Err(invalid(
                "spec.minReplicas",
                format!("{min_replicas} must be at least 1"),
            ));
        }
        if spec.max_replicas < min_replicas {
            return Err(invalid(
                "spec.maxReplicas",
                format!(
                    "{} must be at least minReplicas ({min_replicas})",
                    spec.max_replicas
                ),
            ));
        }

        let target_utilization_pct = match spec.metrics.as_deref() {
            None | Some([]) => DEFAULT_CPU_UTILIZATION_PCT,
            Some([metric]) => cpu_utilization_target(metric)?,
            Some(metrics) => {
                // Name an unsupported type before complaining about the count: that is
                // the more useful message when someone adds, say, a Pods metric.
                for metric in metrics {
                    cpu_utilization_target(metric)?;
                }
                return Err(SpecError::TooManyMetrics(metrics.len()));
            }
        };

        let behavior = match &spec.behavior {
            None => None,
            Some(b) => {
                let mut scale_up = ScalingRules::default_scale_up();
                if let Some(rules) = &b.scale_up {
                    scale_up = scale_up.with_overrides(rules, "spec.behavior.scaleUp")?;
                }
                let mut scale_down = ScalingRules::default_scale_down();
                if let Some(rules) = &b.scale_down {
                    scale_down = scale_down.with_overrides(rules, "spec.behavior.scaleDown")?;
                }
                Some(Behavior {
                    scale_up,
                    scale_down,
                })
            }
        };

        Ok(Self {
            min_replicas: min_replicas.unsigned_abs(),
            max_replicas: spec.max_replicas.unsigned_abs(),
            target_utilization_pct,
            behavior,
        })
    }
}

impl HpaSpec {
    /// Parses an HPA manifest (as in `k8s/hpa.yaml`) and converts it.
    pub fn from_yaml(yaml: &str) -> Result<Self, SpecError> {
        let hpa: HorizontalPodAutoscaler = serde_norway::from_str(yaml)?;
        Self::try_from(&hpa)
    }
}
