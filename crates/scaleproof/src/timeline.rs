//! The scaling timeline: what the autoscaler saw and did, sampled over a scenario.
//!
//! Both backends produce the same [`ScaleSample`] type (the local backend from its
//! port of the HPA controller, the kind/cluster backend from the HPA's status and
//! PodMetrics), so verdicts and reports never care which backend ran.

/// One observation of the autoscaler and the replicas it controls.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleSample {
    /// Seconds since the scenario started (load starts at 0).
    pub t_s: f64,
    /// Replica count the autoscaler asked for (HPA `status.desiredReplicas`); `None`
    /// while the HPA has no status yet (before its first sync), which is not 0.
    pub desired_replicas: Option<u32>,
    /// Replicas that exist (HPA `status.currentReplicas`); `None` before the HPA's
    /// first sync.
    pub current_replicas: Option<u32>,
    /// Replicas that pass their readiness probe and receive traffic.
    pub ready_replicas: u32,
    /// Pods being stopped (deleted, not gone yet): a scale-down in progress.
    pub terminating_replicas: u32,
    /// Average CPU utilization in percent of the CPU request, as the HPA computed it
    /// (`None` while no metric is available yet).
    pub cpu_utilization_pct: Option<u32>,
    /// The HPA's target average utilization in percent of the request.
    pub cpu_target_pct: u32,
    /// CPU usage of each replica, as metrics-server (or the local sampler) reports it.
    pub replicas: Vec<ReplicaUsage>,
    /// HPA status conditions at this moment.
    pub conditions: Vec<Condition>,
    /// Every metric of the HPA's `status.currentMetrics`, in spec order, with its
    /// target and the replica count it proposes (empty before the first sync).
    pub metrics: Vec<MetricSample>,
}

/// The HPA's tolerance: within 10 % of the target a metric proposes no change
/// (`--horizontal-pod-autoscaler-tolerance`, default 0.1).
pub const HPA_TOLERANCE: f64 = 0.1;

/// One HPA metric at one moment: what the HPA's status says it measured, the target
/// from its spec, and the replica count it proposes.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    /// `cpu` or `memory` (Resource metrics), `container/resource` (ContainerResource,
    /// e.g. `iris-server/memory`).
    pub name: String,
    /// Current average utilization, percent of the request (Utilization targets).
    pub current_utilization_pct: Option<u32>,
    /// Current average per pod in the resource's unit: cores for cpu, bytes for memory.
    pub current_average_value: Option<f64>,
    /// Target average utilization, percent of the request (Utilization targets).
    pub target_utilization_pct: Option<u32>,
    /// Target average per pod (AverageValue targets), in the same unit.
    pub target_average_value: Option<f64>,
    /// The replica count this metric proposes, as upstream's replica calculator does
    /// from the status: `ceil(currentReplicas × current / target)`, or no change within
    /// the tolerance. An estimate: upstream counts ready pods and treats unready and
    /// missing ones specially, which the status does not show. `None` without a
    /// current value or a replica count.
    pub proposal_replicas: Option<u32>,
}

impl MetricSample {
    /// Current over target, by the target's type (utilization first, as the HPA).
    pub fn ratio(&self) -> Option<f64> {
        match (self.target_utilization_pct, self.target_average_value) {
            (Some(target), _) if target > 0 => self
                .current_utilization_pct
                .map(|current| f64::from(current) / f64::from(target)),
            (None, Some(target)) if target > 0.0 => {
                self.current_average_value.map(|current| current / target)
            }
            _ => None,
        }
    }

    /// Upstream's per-metric proposal for `replicas` current replicas
    /// (`replica_calculator.go`, `GetResourceReplicas`/`GetRawResourceReplicas`:
    /// within the tolerance the count stays, else `ceil(usageRatio × replicas)`).
    pub fn proposal(&self, replicas: u32) -> Option<u32> {
        let ratio = self.ratio()?;
        if (1.0 - ratio).abs() <= HPA_TOLERANCE {
            return Some(replicas);
        }
        Some((ratio * f64::from(replicas)).ceil().max(0.0) as u32)
    }

    /// E.g. `memory utilization 180% of request is above target 60%`, `memory average
    /// 120.0Mi is above target 64.0Mi`.
    pub fn describe(&self) -> String {
        let side = |ratio: f64| if ratio > 1.0 { "above" } else { "below" };
        match (self.target_utilization_pct, self.target_average_value) {
            (Some(target), _) => match self.current_utilization_pct {
                Some(u) => format!(
                    "{} utilization {u}% of request is {} target {target}%",
                    self.name,
                    side(f64::from(u) / f64::from(target.max(1)))
                ),
                None => format!("{} utilization unknown (target {target}%)", self.name),
            },
            (None, Some(target)) => match self.current_average_value {
                Some(v) => format!(
                    "{} average {} is {} target {}",
                    self.name,
                    self.amount(v),
                    side(v / target.max(f64::MIN_POSITIVE)),
                    self.amount(target)
                ),
                None => format!(
                    "{} average unknown (target {})",
                    self.name,
                    self.amount(target)
                ),
            },
            (None, None) => format!("{} (no target)", self.name),
        }
    }

    /// A value in the unit people read: MiB for memory, millicores for cpu.
    fn amount(&self, value: f64) -> String {
        if self.name.ends_with("memory") {
            format!("{:.1}Mi", value / (1024.0 * 1024.0))
        } else if self.name.ends_with("cpu") {
            format!("{:.0}m", value * 1000.0)
        } else {
            format!("{value}")
        }
    }
}

/// The metric whose proposal is the largest (the first among equals, as upstream's
/// `computeReplicasForMetrics` keeps the first proposal no later one exceeds).
pub fn driving_metric(metrics: &[MetricSample]) -> Option<&MetricSample> {
    let mut best: Option<&MetricSample> = None;
    for metric in metrics {
        let Some(proposal) = metric.proposal_replicas else {
            continue;
        };
        if best.is_none_or(|b| b.proposal_replicas.is_some_and(|p| proposal > p)) {
            best = Some(metric);
        }
    }
    best
}

/// Usage of one replica (a pod, or a local process).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaUsage {
    /// Pod name, or `replica-N` on the local backend.
    pub name: String,
    /// Usage in millicores over the last metric window (`None`: no metric yet).
    pub cpu_millicores: Option<u64>,
    /// Memory working set in bytes at the last scrape (`None`: no metric yet).
    pub memory_bytes: Option<u64>,
    /// Whether the replica is ready (receives traffic).
    pub ready: bool,
}

/// An HPA status condition, with the upstream type and reason strings
/// (for example `ScalingLimited` / `True` / `TooManyReplicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub type_: String,
    /// `"True"`, `"False"` or `"Unknown"`, as Kubernetes spells them.
    pub status: String,
    pub reason: String,
    pub message: String,
}

impl From<scaleproof_hpa::Condition> for Condition {
    fn from(c: scaleproof_hpa::Condition) -> Self {
        Condition {
            type_: c.type_,
            status: c.status,
            reason: c.reason,
            message: c.message,
        }
    }
}

impl Condition {
    pub fn is(&self, type_: &str, status: &str, reason: &str) -> bool {
        self.type_ == type_ && self.status == status && self.reason == reason
    }
}

/// A whole scenario's samples, in time order, and the scaling events among them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// Ready replicas when the load started (the Deployment's `readyReplicas`): what
    /// a scale-up has to exceed.
    pub start_replicas: Option<u32>,
    pub samples: Vec<ScaleSample>,
    /// Rescales and replica incidents, with the reason the controller gave.
    pub events: Vec<ScaleEvent>,
    /// Spans in which the metrics API could not be read: the samples in them carry
    /// no per-pod usage (a gap, not zeros), and the HPA could not compute either.
    pub metrics_gaps: Vec<MetricsGap>,
}

/// A span without metrics: the metrics API (metrics-server behind the aggregator)
/// answered an error or did not answer in time, e.g. while metrics-server restarts.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsGap {
    /// The first sample that found the metrics API failing.
    pub from_s: f64,
    /// The first sample that found it serving again, or the last sample of the
    /// scenario when it never came back.
    pub to_s: f64,
    /// The first failure, in the API's words.
    pub cause: String,
    /// Whether the metrics were back before the scenario ended.
    pub recovered: bool,
}

impl MetricsGap {
    pub fn duration_s(&self) -> f64 {
        (self.to_s - self.from_s).max(0.0)
    }
}

/// A share of a check's window without metrics from which on a failing scaling
/// check is not held against the service: with a quarter of its window blind, the
/// HPA lost about a detection chain (scrape, sync, pod start) of the time it had,
/// so the check says nothing either way. A shorter gap leaves the verdict standing:
/// a service that scales still scales through it (the fault matrix shows it does).
pub const METRICS_GAP_EXCUSES: f64 = 0.25;

/// Something the autoscaler or the replica set did, for people reading a report.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleEvent {
    /// Seconds since the scenario started.
    pub t_s: f64,
    /// A sentence, e.g. "scaled 1 -> 3 on memory: memory utilization 180% of request is
    /// above target 60% (proposal 3); cpu utilization 4% of request is below target 50%
    /// (proposal 1)".
    pub message: String,
    /// Something that happened to the scenario rather than by the autoscaler's
    /// choice: a container that died and restarted, a metrics gap. The report lists
    /// these as what the run rode through.
    pub incident: bool,
}

impl Timeline {
    pub fn push(&mut self, sample: ScaleSample) {
        self.samples.push(sample);
    }

    pub fn event(&mut self, t_s: f64, message: impl Into<String>) {
        self.events.push(ScaleEvent {
            t_s,
            message: message.into(),
            incident: false,
        });
    }

    /// An event that happened to the scenario ([`ScaleEvent::incident`]).
    pub fn incident(&mut self, t_s: f64, message: impl Into<String>) {
        self.events.push(ScaleEvent {
            t_s,
            message: message.into(),
            incident: true,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Highest ready replica count seen.
    pub fn peak_ready_replicas(&self) -> u32 {
        self.samples
            .iter()
            .map(|s| s.ready_replicas)
            .max()
            .unwrap_or(0)
    }

    /// Highest desired replica count seen (samples without HPA status do not count).
    pub fn peak_desired_replicas(&self) -> u32 {
        self.samples
            .iter()
            .filter_map(|s| s.desired_replicas)
            .max()
            .unwrap_or(0)
    }

    /// Highest replica count seen in any form: desired, current or ready.
    pub fn peak_replicas(&self) -> u32 {
        self.samples
            .iter()
            .flat_map(|s| {
                [
                    s.desired_replicas,
                    s.current_replicas,
                    Some(s.ready_replicas),
                ]
            })
            .flatten()
            .max()
            .unwrap_or(0)
    }

    /// Time of the first scale-up: the first sample whose desired count exceeds the
    /// ready replicas the scenario started with ([`Timeline::start_replicas`]).
    /// Samples without HPA status never count (an HPA before its first sync reports
    /// nothing, not 0, and its first sync's "1" is no scale-up from 1). Without a
    /// recorded start, the first sample with a status stands in for it.
    pub fn first_scale_up_s(&self) -> Option<f64> {
        let start = match self.start_replicas {
            Some(start) => start,
            None => {
                let first = self.samples.iter().find(|s| s.desired_replicas.is_some())?;
                first
                    .current_replicas
                    .unwrap_or(first.ready_replicas)
                    .min(first.desired_replicas.unwrap_or(u32::MAX))
            }
        };
        self.samples
            .iter()
            .find(|s| s.desired_replicas.is_some_and(|d| d > start))
            .map(|s| s.t_s)
    }

    /// Seconds from `from_s` until the first sample (at or after it) where the HPA
    /// wants `min` replicas and exactly `min` are ready; `None` if that never came.
    pub fn back_to_min_s(&self, min: u32, from_s: f64) -> Option<f64> {
        self.samples
            .iter()
            .filter(|s| s.t_s >= from_s)
            .find(|s| s.desired_replicas == Some(min) && s.ready_replicas == min)
            .map(|s| s.t_s - from_s)
    }

    /// The time spans in which a pod was terminating, widened to the neighbouring
    /// samples (a pod that stopped between two samples was terminating somewhere in
    /// between): `(from_s, to_s)`, merged when they touch.
    pub fn terminating_windows(&self) -> Vec<(f64, f64)> {
        let mut windows: Vec<(f64, f64)> = Vec::new();
        for (i, sample) in self.samples.iter().enumerate() {
            if sample.terminating_replicas == 0 {
                continue;
            }
            let from = i
                .checked_sub(1)
                .and_then(|p| self.samples.get(p))
                .map_or(sample.t_s, |p| p.t_s);
            let to = self.samples.get(i + 1).map_or(sample.t_s, |n| n.t_s);
            match windows.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => windows.push((from, to)),
            }
        }
        windows
    }

    /// Seconds of `[from_s, to_s]` without metrics.
    pub fn metrics_gap_within(&self, from_s: f64, to_s: f64) -> f64 {
        self.metrics_gaps
            .iter()
            .map(|g| (g.to_s.min(to_s) - g.from_s.max(from_s)).max(0.0))
            .sum()
    }

    /// When metrics were missing for at least [`METRICS_GAP_EXCUSES`] of `[0, to_s]`:
    /// a sentence saying for how long and why, for a check that cannot be judged.
    pub fn blind_for(&self, to_s: f64) -> Option<String> {
        let blind = self.metrics_gap_within(0.0, to_s);
        if to_s <= 0.0 || blind < to_s * METRICS_GAP_EXCUSES {
            return None;
        }
        let spans: Vec<String> = self
            .metrics_gaps
            .iter()
            .filter(|g| g.from_s < to_s)
            .map(|g| format!("t={:.1}-{:.1} s: {}", g.from_s, g.to_s, g.cause))
            .collect();
        Some(format!(
            "the metrics API was unavailable for {blind:.1} of the {to_s:.1} s this check \
             covers ({}); the HPA could not see CPU, so this says nothing about the \
             service: infrastructure",
            spans.join("; ")
        ))
    }

    /// The time of the last sample (0 without samples).
    pub fn end_s(&self) -> f64 {
        self.samples.last().map_or(0.0, |s| s.t_s)
    }

    /// How often the desired replica count turned around (up then down, or down
    /// then up). Samples without HPA status are skipped.
    pub fn direction_changes(&self) -> u32 {
        let mut changes = 0;
        let mut last_direction: Option<std::cmp::Ordering> = None;
        let mut previous: Option<u32> = None;
        for desired in self.samples.iter().filter_map(|s| s.desired_replicas) {
            if let Some(before) = previous {
                let direction = desired.cmp(&before);
                if direction != std::cmp::Ordering::Equal {
                    if last_direction.is_some_and(|d| d != direction) {
                        changes += 1;
                    }
                    last_direction = Some(direction);
                }
            }
            previous = Some(desired);
        }
        changes
    }

    /// The highest CPU utilization the HPA reported.
    pub fn peak_cpu_utilization_pct(&self) -> Option<u32> {
        self.samples
            .iter()
            .filter_map(|s| s.cpu_utilization_pct)
            .max()
    }

    /// Whether any sample carried a metric value (CPU utilization or any metric of
    /// the HPA's status).
    pub fn has_metrics(&self) -> bool {
        self.samples.iter().any(|s| {
            s.cpu_utilization_pct.is_some()
                || s.metrics.iter().any(|m| {
                    m.current_utilization_pct.is_some() || m.current_average_value.is_some()
                })
        })
    }

    /// Whether the condition was ever reported.
    pub fn saw_condition(&self, type_: &str, status: &str, reason: &str) -> bool {
        self.samples
            .iter()
            .any(|s| s.conditions.iter().any(|c| c.is(type_, status, reason)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, desired: u32, current: u32) -> ScaleSample {
        ScaleSample {
            t_s,
            desired_replicas: Some(desired),
            current_replicas: Some(current),
            ready_replicas: current,
            terminating_replicas: 0,
            cpu_utilization_pct: Some(100),
            cpu_target_pct: 50,
            replicas: Vec::new(),
            conditions: Vec::new(),
            metrics: Vec::new(),
        }
    }

    fn metric(name: &str, current: u32, target: u32) -> MetricSample {
        MetricSample {
            name: name.into(),
            current_utilization_pct: Some(current),
            current_average_value: None,
            target_utilization_pct: Some(target),
            target_average_value: None,
            proposal_replicas: None,
        }
    }

    #[test]
    fn proposals_follow_upstreams_ratio_and_tolerance() {
        // 180% against 60%: ratio 3, ceil(3 x 1) = 3.
        assert_eq!(metric("memory", 180, 60).proposal(1), Some(3));
        // Within 10% of the target: no change.
        assert_eq!(metric("cpu", 54, 50).proposal(2), Some(2));
        // 20% of 50% on 3 replicas: ceil(0.4 x 3) = 2.
        assert_eq!(metric("cpu", 20, 50).proposal(3), Some(2));
        let average = MetricSample {
            name: "memory".into(),
            current_utilization_pct: None,
            current_average_value: Some(96.0 * 1024.0 * 1024.0),
            target_utilization_pct: None,
            target_average_value: Some(48.0 * 1024.0 * 1024.0),
            proposal_replicas: None,
        };
        assert_eq!(average.proposal(1), Some(2));
        assert_eq!(
            average.describe(),
            "memory average 96.0Mi is above target 48.0Mi"
        );
        assert_eq!(
            metric("cpu", 4, 50).describe(),
            "cpu utilization 4% of request is below target 50%"
        );
        let mut unknown = metric("cpu", 0, 50);
        unknown.current_utilization_pct = None;
        assert_eq!(unknown.proposal(1), None);
    }

    #[test]
    fn the_driving_metric_is_the_largest_proposal_first_among_equals() {
        let with = |name: &str, p: Option<u32>| MetricSample {
            proposal_replicas: p,
            ..metric(name, 0, 50)
        };
        let metrics = [
            with("cpu", Some(1)),
            with("memory", Some(3)),
            with("x", Some(3)),
        ];
        assert_eq!(
            driving_metric(&metrics).map(|m| m.name.as_str()),
            Some("memory")
        );
        let metrics = [with("cpu", None), with("memory", Some(1))];
        assert_eq!(
            driving_metric(&metrics).map(|m| m.name.as_str()),
            Some("memory")
        );
        assert!(driving_metric(&[with("cpu", None)]).is_none());
    }

    #[test]
    fn scale_down_direction_changes_and_terminating_windows() {
        let mut samples = vec![
            sample(0.0, 1, 1),
            sample(1.0, 3, 1),
            sample(2.0, 3, 3),
            sample(3.0, 2, 3),
            sample(4.0, 1, 2),
            sample(5.0, 1, 1),
            sample(6.0, 2, 1),
        ];
        samples[3].terminating_replicas = 1;
        samples[4].terminating_replicas = 1;
        samples[5].ready_replicas = 1;
        let timeline = Timeline {
            start_replicas: Some(1),
            samples,
            events: Vec::new(),
            metrics_gaps: Vec::new(),
        };
        // Up, down, up again: two turns.
        assert_eq!(timeline.direction_changes(), 2);
        assert_eq!(timeline.terminating_windows(), vec![(2.0, 5.0)]);
        assert_eq!(timeline.back_to_min_s(1, 2.5), Some(2.5));
        assert_eq!(timeline.back_to_min_s(1, 5.5), None, "wanted 2 again");
        assert_eq!(timeline.peak_cpu_utilization_pct(), Some(100));
    }

    #[test]
    fn a_scale_up_at_the_first_sync_counts() {
        let timeline = Timeline {
            start_replicas: Some(1),
            samples: vec![sample(1.0, 3, 1), sample(2.0, 3, 3)],
            events: Vec::new(),
            metrics_gaps: Vec::new(),
        };
        assert_eq!(timeline.first_scale_up_s(), Some(1.0));
    }

    #[test]
    fn an_hpa_without_status_and_then_at_one_replica_did_not_scale_up() {
        let mut before_sync = sample(0.0, 0, 0);
        before_sync.desired_replicas = None;
        before_sync.current_replicas = None;
        let mut second = before_sync.clone();
        second.t_s = 1.0;
        let timeline = Timeline {
            start_replicas: Some(1),
            samples: vec![before_sync, second, sample(5.0, 1, 1), sample(10.0, 1, 1)],
            events: Vec::new(),
            metrics_gaps: Vec::new(),
        };
        assert_eq!(timeline.first_scale_up_s(), None);
        assert_eq!(timeline.peak_desired_replicas(), 1);
    }

    #[test]
    fn a_later_scale_up_is_found_and_none_without_one() {
        let later = Timeline {
            start_replicas: Some(1),
            samples: vec![sample(0.0, 1, 1), sample(1.0, 1, 1), sample(2.0, 2, 1)],
            events: Vec::new(),
            metrics_gaps: Vec::new(),
        };
        assert_eq!(later.first_scale_up_s(), Some(2.0));
        let flat = Timeline {
            start_replicas: Some(1),
            samples: vec![sample(0.0, 1, 1), sample(1.0, 1, 1)],
            events: Vec::new(),
            metrics_gaps: Vec::new(),
        };
        assert_eq!(flat.first_scale_up_s(), None);
        assert_eq!(Timeline::default().first_scale_up_s(), None);
    }

    #[test]
    fn metrics_gaps_count_within_a_window_and_a_quarter_blinds_a_check() {
        let gap = |from_s: f64, to_s: f64| MetricsGap {
            from_s,
            to_s,
            cause: "service unavailable".into(),
            recovered: true,
        };
        let timeline = Timeline {
            metrics_gaps: vec![gap(5.0, 10.0), gap(20.0, 40.0)],
            ..Timeline::default()
        };
        assert_eq!(timeline.metrics_gap_within(0.0, 30.0), 15.0);
        assert_eq!(timeline.metrics_gap_within(8.0, 22.0), 4.0);
        // 5 s of the first 30 s is a sixth: the check stands.
        let short = Timeline {
            metrics_gaps: vec![gap(5.0, 10.0)],
            ..Timeline::default()
        };
        assert_eq!(short.blind_for(30.0), None);
        // 15 of 30 s is half: not judged, and the sentence says why.
        let why = timeline.blind_for(30.0).expect("blind");
        assert!(why.contains("15.0 of the 30.0 s"), "{why}");
        assert!(why.contains("t=20.0-40.0 s: service unavailable"), "{why}");
        assert!(why.ends_with("infrastructure"), "{why}");
    }
}
