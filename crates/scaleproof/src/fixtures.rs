//! Hand-made measurements for unit tests of verdicts and reports.

use std::collections::BTreeMap;

use crate::timeline::{Condition, ScaleSample, Timeline};
use scaleproof_load::{LatencySummary, LoadMode, LoadResult, Promised, SecondStats, Shortfall};

/// A closed-loop result: `sent` requests, `ok` of them 2xx, at `rps` per second for
/// `seconds` seconds, p95 `p95_ms`.
pub fn load(sent: u64, ok: u64, rps: &[u64], p95_ms: f64) -> LoadResult {
    let duration_s = rps.len() as f64;
    let latency = LatencySummary {
        min_ms: 1.0,
        mean_ms: p95_ms / 2.0,
        p50_ms: p95_ms / 2.0,
        p90_ms: p95_ms * 0.9,
        p95_ms,
        p99_ms: p95_ms * 1.5,
        p99_9_ms: p95_ms * 2.0,
        max_ms: p95_ms * 3.0,
    };
    LoadResult {
        mode: LoadMode::Closed,
        promised: Promised {
            requests: Some(sent),
            duration_s: None,
            concurrency: Some(10),
            rate_per_s: None,
            ramp_to_per_s: None,
            ramp_over_s: None,
            max_in_flight: None,
            late_after_ms: None,
            timeout_s: 10.0,
            stages: None,
        },
        cancelled: false,
        sent,
        ok,
        failed: sent - ok,
        status_counts: BTreeMap::from([(200, ok), (503, sent - ok)]),
        errors: Default::default(),
        success_rate: if sent == 0 {
            0.0
        } else {
            ok as f64 / sent as f64
        },
        throughput_per_s: if duration_s > 0.0 {
            sent as f64 / duration_s
        } else {
            0.0
        },
        duration_s,
        late: 0,
        dropped: 0,
        latency_ms: Some(latency),
        service_time_ms: Some(latency),
        timeline: rps
            .iter()
            .enumerate()
            .map(|(i, r)| SecondStats {
                t_s: i as f64,
                requests: *r,
                errors: 0,
                p50_ms: Some(p95_ms / 2.0),
                p95_ms: Some(p95_ms),
                p99_ms: Some(p95_ms * 1.5),
            })
            .collect(),
        stages: Vec::new(),
        shortfall: None,
    }
}

/// The same result, marked as having sent only `sent` of `promised` requests.
pub fn short(mut result: LoadResult, promised: u64) -> LoadResult {
    result.promised.requests = Some(promised);
    result.shortfall = Some(Shortfall {
        missing: promised - result.sent,
        late: 0,
        dropped: 0,
        reasons: vec![format!(
            "sent {} of {promised} promised requests",
            result.sent
        )],
    });
    result
}

/// A timeline from `(t_s, desired, ready, utilization)` rows; current = desired; the
/// load started at the first row's ready count.
pub fn timeline(rows: &[(f64, u32, u32, Option<u32>)]) -> Timeline {
    Timeline {
        start_replicas: rows.first().map(|r| r.2),
        samples: rows
            .iter()
            .map(|&(t_s, desired, ready, cpu)| ScaleSample {
                t_s,
                desired_replicas: Some(desired),
                current_replicas: Some(desired),
                ready_replicas: ready,
                terminating_replicas: 0,
                cpu_utilization_pct: cpu,
                cpu_target_pct: 50,
                replicas: Vec::new(),
                conditions: Vec::new(),
                metrics: Vec::new(),
            })
            .collect(),
        events: Vec::new(),
        metrics_gaps: Vec::new(),
    }
}

pub fn too_many_replicas() -> Condition {
    Condition {
        type_: "ScalingLimited".into(),
        status: "True".into(),
        reason: "TooManyReplicas".into(),
        message: "the desired replica count is more than the maximum replica count".into(),
    }
}
