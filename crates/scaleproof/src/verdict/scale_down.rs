//! The second half of an autoscaler's story: scaling back in after demand drops,
//! without failing requests and without flapping, and staying put at normal load.

use scaleproof_load::LoadResult;

use super::{ReplicaBounds, Verdict, number};
use crate::scenario::DemandDrop;
use crate::timeline::Timeline;

/// Ready replicas back at minReplicas within `within_s` of the drop in demand.
pub(super) fn within(
    within_s: f64,
    from: &DemandDrop,
    load: &LoadResult,
    timeline: &Timeline,
    bounds: ReplicaBounds,
) -> Verdict {
    let (from_s, what) = match from {
        DemandDrop::LoadEnd => (load.duration_s, "the load's end".to_string()),
        DemandDrop::Stage { name, at_s } => (*at_s, format!("stage {name:?}")),
    };
    let back = timeline.back_to_min_s(bounds.min, from_s);
    let measured = match back {
        Some(s) => format!("back at {} after {s:.1} s", bounds.min),
        None => {
            let last = timeline.samples.last();
            format!(
                "not back at {} by the end (t={:.0} s): desired {}, ready {}",
                bounds.min,
                last.map_or(0.0, |s| s.t_s),
                last.and_then(|s| s.desired_replicas)
                    .map_or("-".into(), |d| d.to_string()),
                last.map_or(0, |s| s.ready_replicas),
            )
        }
    };
    Verdict::new(
        "scale_down_within_s",
        format!(
            "back at minReplicas ({}) within {} s of {what} (t={from_s:.0} s)",
            bounds.min,
            number(within_s)
        ),
        measured,
        back.is_some_and(|s| s <= within_s),
    )
}

/// Failed requests (non-2xx or no response) in the seconds during which a pod was
/// terminating. The load's per-second series and the timeline's samples share the
/// load's start as zero; a second counts when it overlaps a terminating window.
pub(super) fn failed_during(max: u64, load: &LoadResult, timeline: &Timeline) -> Verdict {
    let windows = timeline.terminating_windows();
    let failed: u64 = load
        .timeline
        .iter()
        .filter(|second| {
            windows
                .iter()
                .any(|(from, to)| second.t_s < *to && second.t_s + 1.0 > *from)
        })
        .map(|second| second.errors)
        .sum();
    let spans: Vec<String> = windows
        .iter()
        .map(|(from, to)| format!("{from:.0}-{to:.0} s"))
        .collect();
    let measured = if windows.is_empty() {
        "no pod terminated during the scenario".to_string()
    } else {
        format!(
            "{failed} failed while pods were terminating ({})",
            spans.join(", ")
        )
    };
    Verdict::new(
        "max_failed_during_scale_down",
        format!("at most {max} requests fail while a pod is terminating"),
        measured,
        failed <= max,
    )
}

/// The desired replica count turns around at most `max` times.
pub(super) fn direction_changes(max: u32, timeline: &Timeline) -> Verdict {
    let changes = timeline.direction_changes();
    let path: Vec<String> = {
        let mut counts: Vec<u32> = Vec::new();
        for d in timeline.samples.iter().filter_map(|s| s.desired_replicas) {
            if counts.last() != Some(&d) {
                counts.push(d);
            }
        }
        counts.iter().map(u32::to_string).collect()
    };
    Verdict::new(
        "max_replica_direction_changes",
        format!("the replica count changes direction at most {max} times"),
        format!("{changes} (desired {})", path.join(" -> ")),
        changes <= max,
    )
}

/// The HPA's CPU utilization stays at or below `max` percent of the request.
pub(super) fn cpu_at_most(max: u32, timeline: &Timeline) -> Verdict {
    let peak = timeline.peak_cpu_utilization_pct();
    Verdict::new(
        "max_cpu_utilization_pct",
        format!("CPU utilization <= {max} % of the request"),
        peak.map_or_else(
            || "no CPU utilization reported".into(),
            |p| format!("peak {p} %"),
        ),
        peak.is_some_and(|p| p <= max),
    )
}
