//! The replica calculator for a cpu Utilization target: upstream
//! `ReplicaCalculator.GetResourceReplicas` with its helpers `groupPods` and
//! `metrics.GetResourceUtilizationRatio` (`pkg/controller/podautoscaler`).

use std::time::Duration;

use super::options::ControllerOptions;

/// One pod (or local replica) as the controller sees it: its status from the pod
/// lister and its sample from the resource metrics API. All times are offsets from
/// the same arbitrary epoch as the `now` passed to [`super::Autoscaler::reconcile`].
#[derive(Debug, Clone, PartialEq)]
pub struct PodInput {
    /// Pod name (or `replica-N` locally); only for the caller's bookkeeping.
    pub name: String,
    /// `status.phase`.
    pub phase: PodPhase,
    /// The pod has a deletion timestamp (it is terminating).
    pub deleted: bool,
    /// The pod's `Ready` condition; `None` when the pod has none yet.
    pub ready: Option<ReadyCondition>,
    /// `status.startTime`; `None` before the kubelet accepted the pod.
    pub start_time: Option<Duration>,
    /// Sum of the containers' cpu requests. A request of 0 counts as a request of 0.
    pub cpu_request_millicores: u64,
    /// The pod's latest metric; `None` when the metrics API returned none for it.
    pub usage: Option<PodMetric>,
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

/// A `PodMetrics` sample: cpu used on average over `window`, ending at `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodMetric {
    /// Average cpu usage over the window, in millicores.
    pub cpu_millicores: u64,
    /// End of the sampled window.
    pub timestamp: Duration,
    /// Length of the sampled window (metrics-server: its resolution).
    pub window: Duration,
}

/// Why no replica count could be computed. The texts are upstream's error strings,
/// because they end up in the `ScalingActive` condition message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MetricError {
    /// Not a single pod has a metric (what metrics-server answers for fresh pods).
    #[error(
        "unable to get metrics for resource cpu: no metrics returned from resource metrics API"
    )]
    NoMetrics,
    /// Some pods have metrics, but none of them counts (all unready or ignored).
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoMetricsForTargetedPods,
    /// The pods that count request no cpu at all, so utilization is undefined.
    #[error("no metrics returned matched known pods")]
    ZeroRequests,
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

/// The calculator's proposal and what it was based on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Calculation {
    pub(crate) replicas: u32,
    /// Utilization of the ready pods, in percent of their requests.
    pub(crate) utilization_pct: u32,
    pub(crate) ratio: f64,
    pub(crate) ready: usize,
    pub(crate) unready: usize,
    pub(crate) missing: usize,
    pub(crate) ignored: usize,
    pub(crate) basis: Basis,
}

/// Pods sorted by how much their metric can be trusted (upstream `groupPods`).
#[derive(Default)]
struct PodGroups<'a> {
    /// Pods whose metric counts, with that metric.
    ready: Vec<(&'a PodInput, PodMetric)>,
    /// Pending pods, and pods whose cpu sample may still reflect start-up.
    unready: Vec<&'a PodInput>,
    /// Running pods without a metric.
    missing: Vec<&'a PodInput>,
    /// Terminating or terminal (failed, succeeded) pods: they count for nothing.
    ignored: usize,
}

fn group_pods<'a>(
    pods: &'a [PodInput],
    now: Duration,
    options: &ControllerOptions,
) -> PodGroups<'a> {
    let mut groups = PodGroups::default();
    for pod in pods {
        if pod.deleted || pod.phase.is_terminal() {
            groups.ignored += 1;
            continue;
        }
        if pod.phase == PodPhase::Pending {
            groups.unready.push(pod);
            continue;
        }
        let Some(metric) = pod.usage else {
            groups.missing.push(pod);
            continue;
        };
        if cpu_sample_is_unready(pod, metric, now, options) {
            groups.unready.push(pod);
        } else {
            groups.ready.push((pod, metric));
        }
    }
    groups
}

/// Whether a cpu sample may be inflated by start-up work and must not count.
fn cpu_sample_is_unready(
    pod: &PodInput,
    metric: PodMetric,
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
        not_ready || metric.timestamp < condition.last_transition.saturating_add(metric.window)
    } else {
        // Initialized: only a pod that has never become ready is distrusted. Its last
        // transition then happened within the initial readiness delay after start.
        not_ready
            && start.saturating_add(options.initial_readiness_delay) > condition.last_transition
    }
}

/// Integer percent of summed usage over summed requests (upstream truncates too).
/// `None` when nothing is requested.
fn utilization_pct(samples: &[(u64, u64)]) -> Option<u32> {
    let usage: u128 = samples.iter().map(|&(used, _)| u128::from(used)).sum();
    let requests: u128 = samples
        .iter()
        .map(|&(_, request)| u128::from(request))
        .sum();
    if requests == 0 {
        return None;
    }
    Some(u32::try_from(usage * 100 / requests).unwrap_or(u32::MAX))
}

/// `ceil(ratio × pods)` as a replica count (saturating, as counts are small).
fn ceil_replicas(ratio: f64, pods: usize) -> u32 {
    // `as` saturates for out-of-range floats, which is the wanted behaviour here.
    (ratio * pods as f64).ceil() as u32
}

/// Proposes a replica count for a cpu utilization target.
pub(crate) fn resource_replicas(
    current_replicas: u32,
    target_pct: u32,
    tolerances: Tolerances,
    pods: &[PodInput],
    now: Duration,
    options: &ControllerOptions,
) -> Result<Calculation, MetricError> {
    if pods.iter().all(|pod| pod.usage.is_none()) {
        return Err(MetricError::NoMetrics);
    }
    let groups = group_pods(pods, now, options);
    if groups.ready.is_empty() {
        return Err(MetricError::NoMetricsForTargetedPods);
    }

    let mut samples: Vec<(u64, u64)> = groups
        .ready
        .iter()
        .map(|(pod, metric)| (metric.cpu_millicores, pod.cpu_request_millicores))
        .collect();
    let utilization = utilization_pct(&samples).ok_or(MetricError::ZeroRequests)?;
    let ratio = f64::from(utilization) / f64::from(target_pct);

    let calculation = |replicas, basis| Calculation {
        replicas,
        utilization_pct: utilization,
        ratio,
        ready: groups.ready.len(),
        unready: groups.unready.len(),
        missing: groups.missing.len(),
        ignored: groups.ignored,
        basis,
    };

    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if tolerances.is_within(ratio) {
            return Ok(calculation(current_replicas, Basis::WithinTolerance));
        }
        return Ok(calculation(
            ceil_replicas(ratio, groups.ready.len()),
            Basis::Proportional,
        ));
    }

    // Re-check with the uncertain pods filled in pessimistically for the direction the
    // ready pods point to: on a scale-down, missing pods are assumed busy (at least
    // their full request); on a scale-up, missing and unready pods are assumed idle.
    if ratio < 1.0 {
        let fallback_pct = u64::from(target_pct.max(100));
        samples.extend(groups.missing.iter().map(|pod| {
            let request = pod.cpu_request_millicores;
            (request.saturating_mul(fallback_pct) / 100, request)
        }));
    } else if ratio > 1.0 {
        samples.extend(
            groups
                .missing
                .iter()
                .map(|pod| (0, pod.cpu_request_millicores)),
        );
    }
    if scale_up_with_unready {
        samples.extend(
            groups
                .unready
                .iter()
                .map(|pod| (0, pod.cpu_request_millicores)),
        );
    }
    // The ready pods' requests are already in the sum, so it cannot be zero now.
    let new_utilization = utilization_pct(&samples).ok_or(MetricError::ZeroRequests)?;
    let new_ratio = f64::from(new_utilization) / f64::from(target_pct);

    let flips_direction = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if tolerances.is_within(new_ratio) || flips_direction {
        return Ok(calculation(
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
        return Ok(calculation(
            current_replicas,
            Basis::KeptAfterRecheck { ratio: new_ratio },
        ));
    }
    Ok(calculation(
        new_replicas,
        Basis::Rebalanced {
            ratio: new_ratio,
            pods: samples.len(),
        },
    ))
}
