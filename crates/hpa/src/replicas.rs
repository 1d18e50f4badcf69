//! The replica calculator for one resource metric: upstream
//! `ReplicaCalculator.GetResourceReplicas` (Utilization targets) and
//! `GetRawResourceReplicas` (AverageValue targets), with their helpers `groupPods`,
//! `calculateRequests`, the resource metrics client (`getPodMetrics`,
//! `getContainerMetrics`) and `GetResourceUtilizationRatio` / `GetMetricUsageRatio`
//! (`pkg/controller/podautoscaler`).
//!
//! All resource arithmetic is on milli-values, as upstream: millicores for cpu,
//! thousandths of a byte for memory.

use std::time::Duration;

use super::options::ControllerOptions;
use super::spec::{MetricSpec, MetricTarget, ResourceName};

/// One pod (or local replica) as the controller sees it: its status and spec from the
/// pod lister and its sample from the resource metrics API. All times are offsets from
/// the same arbitrary epoch as the `now` passed to [`super::Autoscaler::reconcile`].
#[derive(Debug, Clone, PartialEq)]
pub struct PodInput {
    /// Pod name; it appears in error messages (`missing request for cpu in container
    /// app of Pod web-1`).
    pub name: String,
    /// `status.phase`.
    pub phase: PodPhase,
    /// The pod has a deletion timestamp (it is terminating).
    pub deleted: bool,
    /// The pod's `Ready` condition; `None` when the pod has none yet.
    pub ready: Option<ReadyCondition>,
    /// `status.startTime`; `None` before the kubelet accepted the pod.
    pub start_time: Option<Duration>,
    /// `spec.containers`, followed by the restartable init containers (sidecars), whose
    /// requests upstream counts as well.
    pub containers: Vec<ContainerInput>,
    /// The pod's `PodMetrics` from the resource metrics API; `None` when the API returned
    /// none for it.
    pub metrics: Option<PodMetrics>,
}

/// One container of a pod spec, with its resource requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInput {
    /// `name`.
    pub name: String,
    /// `resources.requests.cpu` in millicores; `None` when the container requests no cpu.
    pub cpu_request_millicores: Option<u64>,
    /// `resources.requests.memory` in bytes; `None` when the container requests no memory.
    pub memory_request_bytes: Option<u64>,
}

/// `status.phase` values the controller distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    /// Not running yet: always unready.
    Pending,
    /// Running: counts according to its readiness and metric.
    Running,
    /// Finished successfully (terminal): ignored, like upstream `IsPodTerminal`.
    Succeeded,
    /// Failed (terminal): ignored.
    Failed,
    /// The kubelet cannot report the phase: treated like `Running`, as upstream does.
    Unknown,
}

impl PodPhase {
    /// Upstream `IsPodTerminal`: the pod will never run again.
    fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// The `status` of a pod condition, as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    /// Neither: for the `Ready` condition upstream treats it like `True`, because its
    /// readiness rules only look for `False`.
    Unknown,
}

/// A pod's `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyCondition {
    /// `status`.
    pub status: ConditionStatus,
    /// `lastTransitionTime`.
    pub last_transition: Duration,
}

/// A `PodMetrics` sample (`metrics.k8s.io`): each container's usage, averaged over
/// `window` and ending at `timestamp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMetrics {
    /// End of the sampled window.
    pub timestamp: Duration,
    /// Length of the sampled window (metrics-server: its resolution).
    pub window: Duration,
    /// `containers`: one entry per container the metrics API reports.
    pub containers: Vec<ContainerUsage>,
}

/// One container's `usage` in a [`PodMetrics`] sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    /// `name`.
    pub name: String,
    /// `usage.cpu` in millicores; `None` when the sample has no cpu figure.
    pub cpu_millicores: Option<u64>,
    /// `usage.memory` (working set) in bytes; `None` when the sample has no memory figure.
    pub memory_bytes: Option<u64>,
}

impl ContainerInput {
    /// The request for `resource` as a milli-value.
    fn request_milli(&self, resource: ResourceName) -> Option<u128> {
        match resource {
            ResourceName::Cpu => self.cpu_request_millicores.map(u128::from),
            ResourceName::Memory => self
                .memory_request_bytes
                .map(|bytes| u128::from(bytes) * 1000),
        }
    }
}

impl ContainerUsage {
    /// The usage of `resource` as a milli-value.
    fn usage_milli(&self, resource: ResourceName) -> Option<u128> {
        match resource {
            ResourceName::Cpu => self.cpu_millicores.map(u128::from),
            ResourceName::Memory => self.memory_bytes.map(|bytes| u128::from(bytes) * 1000),
        }
    }
}

/// Why no replica count could be computed for a metric. The texts are upstream's error
/// strings (without the namespace upstream puts before pod names), because they end up
/// in the `ScalingActive` condition message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MetricError {
    /// Not a single pod has a metrics sample (what metrics-server answers for fresh pods).
    #[error(
        "unable to get metrics for resource {resource}: no metrics returned from resource \
         metrics API"
    )]
    NoMetrics { resource: ResourceName },
    /// Some pods have metrics, but none of them counts (all unready or ignored).
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoMetricsForTargetedPods,
    /// A container of a listed pod requests nothing of the resource: utilization is
    /// undefined, so upstream refuses to compute it.
    #[error("missing request for {resource} in container {container} of Pod {pod}")]
    MissingRequest {
        resource: ResourceName,
        container: String,
        pod: String,
    },
    /// A `ContainerResource` metric names a container the pod spec does not have.
    #[error("container {container} not found in Pod {pod}")]
    ContainerNotFound { container: String, pod: String },
    /// The counted pods request zero of the resource in total.
    #[error("no metrics returned matched known pods")]
    NoMatchingRequests,
}

/// Scale-down and scale-up tolerances (upstream `Tolerances`): a usage ratio in
/// `[1 - down, 1 + up]` keeps the current count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tolerances {
    pub(crate) scale_down: f64,
    pub(crate) scale_up: f64,
}

impl Tolerances {
    fn is_within(self, ratio: f64) -> bool {
        1.0 - self.scale_down <= ratio && ratio <= 1.0 + self.scale_up
    }
}

/// How the calculator arrived at its count, for the human explanation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Basis {
    /// The ratio is within tolerance: keep the current count.
    WithinTolerance,
    /// `ceil(ratio × ready pods)`, all pods counted.
    Proportional,
    /// Re-checked with unready/missing pods filled in; `ceil(ratio × pods)`.
    Rebalanced { ratio: f64, pods: usize },
    /// The re-check landed within tolerance or pointed the other way: keep the count.
    KeptAfterRecheck { ratio: f64 },
}

/// One metric's proposal and what it was based on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Proposal {
    pub(crate) replicas: u32,
    /// Utilization of the counted pods, in percent of their requests (Utilization
    /// targets only).
    pub(crate) utilization_pct: Option<u32>,
    /// Average usage of the counted pods, as a milli-value (upstream's raw value).
    pub(crate) average_milli: u64,
    pub(crate) ratio: f64,
    pub(crate) ready: usize,
    pub(crate) unready: usize,
    pub(crate) missing: usize,
    pub(crate) ignored: usize,
    pub(crate) basis: Basis,
}

/// Pod indices sorted by how much their metric can be trusted (upstream `groupPods`).
#[derive(Default, Debug, PartialEq, Eq)]
pub(crate) struct PodGroups {
    /// Pods whose metric counts.
    pub(crate) ready: Vec<usize>,
    /// Pending pods, and pods whose cpu sample may still reflect start-up.
    pub(crate) unready: Vec<usize>,
    /// Running pods without a metric.
    pub(crate) missing: Vec<usize>,
    /// Terminating or terminal (failed, succeeded) pods: they count for nothing.
    pub(crate) ignored: Vec<usize>,
}

/// One pod's metric value, with the window its sample covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PodValue {
    /// Usage as a milli-value.
    pub(crate) usage: u128,
    pub(crate) timestamp: Duration,
    pub(crate) window: Duration,
}

/// One pod's metric value for `metric` (upstream's resource metrics client): the sum of
/// its containers' usage for a `Resource` metric, missing if the sample has no
/// containers or one of them lacks the resource; the named container's usage for a
/// `ContainerResource` metric, missing if the sample lacks that container (a terminal
/// or crash-looping pod's often does). Fails only when no pod has a sample at all.
///
/// Until kubernetes PR #127193 a sample without the named container failed the whole
/// metric ("container X not present in metrics for pod ..."), so one crash-looping pod
/// froze the HPA; since then (`pkg/controller/podautoscaler/metrics/client.go`,
/// `getContainerMetrics`) such a pod is missing a metric, as for `Resource` metrics.
fn pod_values(
    metric: &MetricSpec,
    pods: &[PodInput],
) -> Result<Vec<Option<PodValue>>, MetricError> {
    let resource = metric.resource;
    if pods.iter().all(|pod| pod.metrics.is_none()) {
        return Err(MetricError::NoMetrics { resource });
    }
    pods.iter()
        .map(|pod| {
            let Some(sample) = &pod.metrics else {
                return Ok(None);
            };
            let value = match &metric.container {
                None => {
                    if sample.containers.is_empty() {
                        None
                    } else {
                        sample
                            .containers
                            .iter()
                            .map(|c| c.usage_milli(resource))
                            .sum::<Option<u128>>()
                    }
                }
                Some(name) => sample
                    .containers
                    .iter()
                    .find(|c| &c.name == name)
                    .and_then(|c| c.usage_milli(resource)),
            };
            Ok(value.map(|usage| PodValue {
                usage,
                timestamp: sample.timestamp,
                window: sample.window,
            }))
        })
        .collect()
}

pub(crate) fn group_pods(
    pods: &[PodInput],
    values: &[Option<PodValue>],
    resource: ResourceName,
    now: Duration,
    options: &ControllerOptions,
) -> PodGroups {
    let mut groups = PodGroups::default();
    for (i, pod) in pods.iter().enumerate() {
        if pod.deleted || pod.phase.is_terminal() {
            groups.ignored.push(i);
            continue;
        }
        if pod.phase == PodPhase::Pending {
            groups.unready.push(i);
            continue;
        }
        let Some(value) = values.get(i).copied().flatten() else {
            groups.missing.push(i);
            continue;
        };
        // Only cpu samples are distrusted around start-up, as upstream.
        if resource == ResourceName::Cpu && cpu_sample_is_unready(pod, value, now, options) {
            groups.unready.push(i);
        } else {
            groups.ready.push(i);
        }
    }
    groups
}

/// Whether a cpu sample may be inflated by start-up work and must not count.
fn cpu_sample_is_unready(
    pod: &PodInput,
    value: PodValue,
    now: Duration,
    options: &ControllerOptions,
) -> bool {
    let (Some(condition), Some(start)) = (pod.ready, pod.start_time) else {
        return true;
    };
    // Only `False` counts as not ready: a `Ready` condition of `Unknown` does not.
    let not_ready = condition.status == ConditionStatus::False;
    if start.saturating_add(options.cpu_initialization_period) > now {
        // Still initializing: trust the sample only once the pod is ready and the
        // sample's whole window lies after the readiness change.
        not_ready || value.timestamp < condition.last_transition.saturating_add(value.window)
    } else {
        // Initialized: only a pod that has never become ready is distrusted. Its last
        // transition then happened within the initial readiness delay after start.
        not_ready
            && start.saturating_add(options.initial_readiness_delay) > condition.last_transition
    }
}

/// Upstream `calculateRequests` (without the pod-level resources feature): every listed
/// pod's request for the resource, the sum of its containers' requests or the named
/// container's. Any container without a request fails the whole metric, even on a pod
/// that the grouping ignores.
pub(crate) fn pod_requests(
    pods: &[PodInput],
    container: Option<&str>,
    resource: ResourceName,
) -> Result<Vec<u128>, MetricError> {
    pods.iter()
        .map(|pod| {
            let missing = |c: &ContainerInput| MetricError::MissingRequest {
                resource,
                container: c.name.clone(),
                pod: pod.name.clone(),
            };
            match container {
                None => pod
                    .containers
                    .iter()
                    .map(|c| c.request_milli(resource).ok_or_else(|| missing(c)))
                    .sum(),
                Some(name) => {
                    let c = pod
                        .containers
                        .iter()
                        .find(|c| c.name == name)
                        .ok_or_else(|| MetricError::ContainerNotFound {
                            container: name.to_owned(),
                            pod: pod.name.clone(),
                        })?;
                    c.request_milli(resource).ok_or_else(|| missing(c))
                }
            }
        })
        .collect()
}

/// `ceil(ratio × pods)` as a replica count (saturating, as counts are small).
fn ceil_replicas(ratio: f64, pods: usize) -> u32 {
    // `as` saturates for out-of-range floats, which is the wanted behaviour here.
    (ratio * pods as f64).ceil() as u32
}

/// How usage compares to the target.
enum Usage {
    /// Usage over requests, per counted pod (upstream `GetResourceUtilizationRatio`).
    Utilization {
        target_pct: u32,
        requests: Vec<u128>,
    },
    /// Plain average usage (upstream `GetMetricUsageRatio`).
    AverageValue { target_milli: u64 },
}

/// What one usage computation yields.
struct Measured {
    ratio: f64,
    utilization_pct: Option<u32>,
    average_milli: u128,
}

impl Usage {
    /// The usage ratio over `samples` (pod index, usage).
    fn measure(&self, samples: &[(usize, u128)]) -> Result<Measured, MetricError> {
        let total: u128 = samples.iter().map(|&(_, usage)| usage).sum();
        // `samples` is never empty here: the caller checked that some pods count.
        let average_milli = total / samples.len().max(1) as u128;
        match self {
            Self::Utilization {
                target_pct,
                requests,
            } => {
                let requested: u128 = samples
                    .iter()
                    .map(|&(i, _)| requests.get(i).copied().unwrap_or(0))
                    .sum();
                if requested == 0 {
                    return Err(MetricError::NoMatchingRequests);
                }
                // Integer percent, truncated like upstream (which clamps to int32).
                let pct = u32::try_from(total * 100 / requested).unwrap_or(u32::MAX);
                Ok(Measured {
                    ratio: f64::from(pct) / f64::from(*target_pct),
                    utilization_pct: Some(pct),
                    average_milli,
                })
            }
            Self::AverageValue { target_milli } => Ok(Measured {
                ratio: average_milli as f64 / *target_milli as f64,
                utilization_pct: None,
                average_milli,
            }),
        }
    }

    /// What a missing pod is assumed to use on a scale-down: its full request (or the
    /// target, when the target is above 100 %), or exactly the target average value.
    fn busy_fill(&self, pod: usize) -> u128 {
        match self {
            Self::Utilization {
                target_pct,
                requests,
            } => {
                let request = requests.get(pod).copied().unwrap_or(0);
                request * u128::from((*target_pct).max(100)) / 100
            }
            Self::AverageValue { target_milli } => u128::from(*target_milli),
        }
    }
}

/// Proposes a replica count for one resource metric.
pub(crate) fn propose(
    metric: &MetricSpec,
    current_replicas: u32,
    tolerances: Tolerances,
    pods: &[PodInput],
    now: Duration,
    options: &ControllerOptions,
) -> Result<Proposal, MetricError> {
    let values = pod_values(metric, pods)?;
    let groups = group_pods(pods, &values, metric.resource, now, options);
    if groups.ready.is_empty() {
        return Err(MetricError::NoMetricsForTargetedPods);
    }
    let usage = match metric.target {
        MetricTarget::Utilization(target_pct) => Usage::Utilization {
            target_pct,
            requests: pod_requests(pods, metric.container.as_deref(), metric.resource)?,
        },
        MetricTarget::AverageValue(target_milli) => Usage::AverageValue { target_milli },
    };

    let mut samples: Vec<(usize, u128)> = groups
        .ready
        .iter()
        .filter_map(|&i| values.get(i).copied().flatten().map(|v| (i, v.usage)))
        .collect();
    let measured = usage.measure(&samples)?;
    let ratio = measured.ratio;

    let proposal = |replicas, basis| Proposal {
        replicas,
        utilization_pct: measured.utilization_pct,
        average_milli: u64::try_from(measured.average_milli).unwrap_or(u64::MAX),
        ratio,
        ready: groups.ready.len(),
        unready: groups.unready.len(),
        missing: groups.missing.len(),
        ignored: groups.ignored.len(),
        basis,
    };

    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if tolerances.is_within(ratio) {
            return Ok(proposal(current_replicas, Basis::WithinTolerance));
        }
        return Ok(proposal(
            ceil_replicas(ratio, groups.ready.len()),
            Basis::Proportional,
        ));
    }

    // Re-check with the uncertain pods filled in pessimistically for the direction the
    // ready pods point to: on a scale-down, missing pods are assumed busy; on a
    // scale-up, missing and unready pods are assumed idle.
    if ratio < 1.0 {
        samples.extend(groups.missing.iter().map(|&i| (i, usage.busy_fill(i))));
    } else if ratio > 1.0 {
        samples.extend(groups.missing.iter().map(|&i| (i, 0)));
    }
    if scale_up_with_unready {
        samples.extend(groups.unready.iter().map(|&i| (i, 0)));
    }
    let new_ratio = usage.measure(&samples)?.ratio;

    let flips_direction = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if tolerances.is_within(new_ratio) || flips_direction {
        return Ok(proposal(
            current_replicas,
            Basis::KeptAfterRecheck { ratio: new_ratio },
        ));
    }
    let new_replicas = ceil_replicas(new_ratio, samples.len());
    // Counting more pods than the current replicas can turn a scale-down into a
    // scale-up (or back); the re-check must never reverse the direction.
    if (new_ratio < 1.0 && new_replicas > current_replicas)
        || (new_ratio > 1.0 && new_replicas < current_replicas)
    {
        return Ok(proposal(
            current_replicas,
            Basis::KeptAfterRecheck { ratio: new_ratio },
        ));
    }
    Ok(proposal(
        new_replicas,
        Basis::Rebalanced {
            ratio: new_ratio,
            pods: samples.len(),
        },
    ))
}
