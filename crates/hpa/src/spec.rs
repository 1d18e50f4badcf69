//! Conversion of an `autoscaling/v2` HorizontalPodAutoscaler into the subset the port
//! supports: `Resource` and `ContainerResource` metrics on `cpu` and `memory`, each with
//! a `Utilization` or an `AverageValue` target, as many as the HPA lists.
//!
//! Out of scope: `Pods`, `Object` and `External` metrics (they need a custom or external
//! metrics API the port does not model) and the alpha/beta feature gates that change
//! the controller (for example `HPAScaleToZero`, pod-level resources).
//!
//! The API server fills defaults before the controller ever sees an HPA; this module
//! applies the same ones (upstream `SetDefaults_HorizontalPodAutoscaler` and
//! `GenerateHPAScaleUpRules` / `GenerateHPAScaleDownRules` in
//! `pkg/apis/autoscaling/v2/defaults.go`) so a manifest means the same thing here as on a
//! cluster.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, MetricSpec as K8sMetricSpec,
    MetricTarget as K8sMetricTarget,
};

use super::quantity;

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
    /// A metric type other than `Resource` and `ContainerResource`.
    #[error(
        "unsupported metric type {0:?}: only Resource and ContainerResource metrics (cpu, \
         memory) are supported; Pods, Object and External metrics are out of scope"
    )]
    UnsupportedMetricType(String),
    /// A resource other than cpu and memory (the ones metrics-server reports).
    #[error("unsupported resource {0:?}: only cpu and memory are supported")]
    UnsupportedResource(String),
    /// A target type other than `Utilization` and `AverageValue` (`Value` is not valid
    /// for resource metrics).
    #[error("unsupported target type {0:?}: only Utilization and AverageValue are supported")]
    UnsupportedTargetType(String),
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
    /// `spec.metrics`, in manifest order; never empty (an HPA without metrics gets cpu
    /// at 80 % of the request). The controller proposes a count per metric and follows
    /// the highest.
    pub metrics: Vec<MetricSpec>,
    /// `spec.behavior`; `None` selects the controller's legacy normalization path.
    pub behavior: Option<Behavior>,
}

impl HpaSpec {
    /// The `averageUtilization` of the first `Resource` cpu metric with a `Utilization`
    /// target, if the HPA has one (what `kubectl get hpa` shows as the cpu target).
    pub fn cpu_utilization_target(&self) -> Option<u32> {
        self.metrics
            .iter()
            .find_map(|m| match (m.resource, &m.container, m.target) {
                (ResourceName::Cpu, None, MetricTarget::Utilization(pct)) => Some(pct),
                _ => None,
            })
    }
}

/// One entry of `spec.metrics`: a `Resource` metric (`container` is `None`) or a
/// `ContainerResource` metric (`container` names the container).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricSpec {
    /// `resource.name` / `containerResource.name`.
    pub resource: ResourceName,
    /// `containerResource.container`; `None` for a `Resource` metric, which sums all
    /// containers of a pod.
    pub container: Option<String>,
    /// `target`.
    pub target: MetricTarget,
}

impl MetricSpec {
    /// A `Resource` metric.
    pub fn resource(resource: ResourceName, target: MetricTarget) -> Self {
        Self {
            resource,
            container: None,
            target,
        }
    }

    /// A `ContainerResource` metric on the container `container`.
    pub fn container_resource(
        resource: ResourceName,
        container: impl Into<String>,
        target: MetricTarget,
    ) -> Self {
        Self {
            resource,
            container: Some(container.into()),
            target,
        }
    }

    /// The metric's name in upstream's condition and event texts, e.g. `cpu resource
    /// utilization (percentage of request)`, `cpu container resource utilization
    /// (percentage of request)` or `memory resource` (any `AverageValue` target).
    pub fn upstream_name(&self) -> String {
        match (self.target, &self.container) {
            (MetricTarget::AverageValue(_), _) => format!("{} resource", self.resource),
            (MetricTarget::Utilization(_), None) => {
                format!(
                    "{} resource utilization (percentage of request)",
                    self.resource
                )
            }
            (MetricTarget::Utilization(_), Some(_)) => format!(
                "{} container resource utilization (percentage of request)",
                self.resource
            ),
        }
    }

    /// A short label for reports: `cpu`, `memory`, `cpu of container app`.
    pub fn label(&self) -> String {
        match &self.container {
            None => self.resource.to_string(),
            Some(container) => format!("{} of container {container}", self.resource),
        }
    }
}

/// The resources metrics-server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceName {
    /// `cpu`: requests and usage in millicores.
    Cpu,
    /// `memory`: requests and usage (working set) in bytes.
    Memory,
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
        })
    }
}

/// `target` of a resource metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricTarget {
    /// `type: Utilization`: `averageUtilization`, in percent of the pods' requests.
    Utilization(u32),
    /// `type: AverageValue`: `averageValue` as a milli-value (Kubernetes `MilliValue()`):
    /// millicores for cpu, thousandths of a byte for memory. Use
    /// [`MetricTarget::cpu_millicores`] and [`MetricTarget::memory_bytes`] to build one.
    AverageValue(u64),
}

impl MetricTarget {
    /// An `AverageValue` target of `millicores` per pod.
    pub fn cpu_millicores(millicores: u64) -> Self {
        Self::AverageValue(millicores)
    }

    /// An `AverageValue` target of `bytes` per pod.
    pub fn memory_bytes(bytes: u64) -> Self {
        Self::AverageValue(bytes.saturating_mul(1000))
    }
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

/// Converts one `spec.metrics` entry, refusing what the API server would refuse and what
/// the port does not model.
fn parse_metric(metric: &K8sMetricSpec, field: &str) -> Result<MetricSpec, SpecError> {
    let (name, container, target, source_field) = match metric.type_.as_str() {
        "Resource" => {
            let source = metric
                .resource
                .as_ref()
                .ok_or_else(|| invalid(format!("{field}.resource"), "missing for type Resource"))?;
            (
                &source.name,
                None,
                &source.target,
                format!("{field}.resource"),
            )
        }
        "ContainerResource" => {
            let source = metric.container_resource.as_ref().ok_or_else(|| {
                invalid(
                    format!("{field}.containerResource"),
                    "missing for type ContainerResource",
                )
            })?;
            if source.container.is_empty() {
                return Err(invalid(
                    format!("{field}.containerResource.container"),
                    "must name a container",
                ));
            }
            (
                &source.name,
                Some(source.container.clone()),
                &source.target,
                format!("{field}.containerResource"),
            )
        }
        other => return Err(SpecError::UnsupportedMetricType(other.to_owned())),
    };
    let resource = match name.as_str() {
        "cpu" => ResourceName::Cpu,
        "memory" => ResourceName::Memory,
        other => return Err(SpecError::UnsupportedResource(other.to_owned())),
    };
    let target = parse_target(target, &format!("{source_field}.target"))?;
    Ok(MetricSpec {
        resource,
        container,
        target,
    })
}

/// A resource metric target: `Utilization` with `averageUtilization` > 0, or
/// `AverageValue` with a positive `averageValue`. The API server refuses a target that
/// sets both fields, so this does too (upstream would silently prefer `averageValue`).
fn parse_target(target: &K8sMetricTarget, field: &str) -> Result<MetricTarget, SpecError> {
    if target.average_utilization.is_some() && target.average_value.is_some() {
        return Err(invalid(
            field,
            "may not set both averageUtilization and averageValue",
        ));
    }
    match target.type_.as_str() {
        "Utilization" => match target.average_utilization {
            Some(pct) if pct > 0 => Ok(MetricTarget::Utilization(pct.unsigned_abs())),
            Some(pct) => Err(invalid(
                format!("{field}.averageUtilization"),
                format!("{pct} must be greater than zero"),
            )),
            None => Err(invalid(
                format!("{field}.averageUtilization"),
                "missing for a Utilization target",
            )),
        },
        "AverageValue" => {
            let quantity = target.average_value.as_ref().ok_or_else(|| {
                invalid(
                    format!("{field}.averageValue"),
                    "missing for an AverageValue target",
                )
            })?;
            match quantity::parse_milli(&quantity.0) {
                Some(milli) if milli > 0 => Ok(MetricTarget::AverageValue(milli)),
                _ => Err(invalid(
                    format!("{field}.averageValue"),
                    format!("{:?} is not a positive quantity", quantity.0),
                )),
            }
        }
        other => Err(SpecError::UnsupportedTargetType(other.to_owned())),
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

        let metrics = match spec.metrics.as_deref() {
            None | Some([]) => vec![MetricSpec::resource(
                ResourceName::Cpu,
                MetricTarget::Utilization(DEFAULT_CPU_UTILIZATION_PCT),
            )],
            Some(metrics) => metrics
                .iter()
                .enumerate()
                .map(|(i, metric)| parse_metric(metric, &format!("spec.metrics[{i}]")))
                .collect::<Result<_, _>>()?,
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
            metrics,
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
