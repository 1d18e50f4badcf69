//! What one reconcile measured for each metric: the port's `status.currentMetrics`.

use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, MetricStatus as K8sMetricStatus, MetricValueStatus,
    ResourceMetricStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::quantity;
use super::spec::{MetricSpec, MetricTarget, ResourceName};

/// One entry of `status.currentMetrics`, for the metric of the same position in
/// `spec.metrics`, plus what the port knows about how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricStatus {
    /// The metric this entry is about.
    pub spec: MetricSpec,
    /// The value the controller measured; `None` when this metric failed this reconcile
    /// (upstream then writes an empty entry).
    pub current: Option<MetricValue>,
    /// The replica count this metric proposed, before the controller took the highest
    /// proposal and normalized it; `None` when the metric failed.
    pub proposed_replicas: Option<u32>,
    /// Why the metric failed, as upstream words it (e.g. `failed to get cpu utilization:
    /// missing request for cpu in container app of Pod web-1`); `None` when it did not.
    pub error: Option<String>,
}

/// `current` of a resource metric status (`MetricValueStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricValue {
    /// `averageUtilization`: percent of the counted pods' requests. Upstream reports it
    /// for `Utilization` targets only.
    pub average_utilization: Option<u32>,
    /// `averageValue` as a milli-value: the counted pods' average usage in millicores
    /// (cpu) or thousandths of a byte (memory). Upstream reports it for both target types.
    pub average_value_milli: u64,
}

impl MetricValue {
    /// `averageValue` as the quantity string upstream stores (`250m`, `1048576`).
    pub fn average_value(&self) -> String {
        quantity::format_milli(self.average_value_milli)
    }
}

impl MetricStatus {
    /// The `autoscaling/v2` `MetricStatus` upstream writes for this metric: type
    /// `Resource` or `ContainerResource` with `current.averageUtilization` (Utilization
    /// targets) and `current.averageValue`. A failed metric becomes the empty entry
    /// (`type: ""`) upstream leaves in its place.
    pub fn to_k8s(&self) -> K8sMetricStatus {
        let Some(value) = self.current else {
            return K8sMetricStatus::default();
        };
        let current = MetricValueStatus {
            average_utilization: match self.spec.target {
                MetricTarget::Utilization(_) => value
                    .average_utilization
                    .map(|pct| i32::try_from(pct).unwrap_or(i32::MAX)),
                MetricTarget::AverageValue(_) => None,
            },
            average_value: Some(Quantity(value.average_value())),
            value: None,
        };
        let name = self.spec.resource.to_string();
        match &self.spec.container {
            None => K8sMetricStatus {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricStatus { name, current }),
                ..K8sMetricStatus::default()
            },
            Some(container) => K8sMetricStatus {
                type_: "ContainerResource".to_owned(),
                container_resource: Some(ContainerResourceMetricStatus {
                    container: container.clone(),
                    name,
                    current,
                }),
                ..K8sMetricStatus::default()
            },
        }
    }

    /// A short description of the measured value for reports: `cpu 200% of request`,
    /// `memory 96.0Mi average`, `cpu of container app 250m average`.
    pub fn describe_current(&self) -> Option<String> {
        let value = self.current?;
        let label = self.spec.label();
        Some(match (self.spec.target, value.average_utilization) {
            (MetricTarget::Utilization(_), Some(pct)) => format!("{label} {pct}% of request"),
            _ => format!(
                "{label} {} average",
                human_amount(self.spec.resource, value.average_value_milli)
            ),
        })
    }
}

/// A target for reports: `50%` or `200Mi` / `250m`.
pub(crate) fn describe_target(spec: &MetricSpec) -> String {
    match spec.target {
        MetricTarget::Utilization(pct) => format!("{pct}%"),
        MetricTarget::AverageValue(milli) => human_amount(spec.resource, milli),
    }
}

/// A resource amount for people: millicores for cpu (`250m`), binary units with one
/// decimal for memory (`96.0Mi`).
pub(crate) fn human_amount(resource: ResourceName, milli: u64) -> String {
    match resource {
        ResourceName::Cpu => format!("{}m", milli),
        ResourceName::Memory => {
            let bytes = milli as f64 / 1000.0;
            let units = ["", "Ki", "Mi", "Gi", "Ti"];
            let mut value = bytes;
            let mut unit = 0;
            while value >= 1024.0 && unit + 1 < units.len() {
                value /= 1024.0;
                unit += 1;
            }
            if unit == 0 {
                format!("{}B", bytes.round())
            } else {
                format!("{value:.1}{}", units[unit])
            }
        }
    }
}
