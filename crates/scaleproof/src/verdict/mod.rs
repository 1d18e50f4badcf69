//! Verdicts: a scenario's expectations held against what the load engine and the
//! autoscaler timeline measured. Pure functions of their inputs, so every rule is
//! unit-tested without a cluster.
//!
//! Two checks are added to every scenario, whatever it expects, to prevent false
//! greens: the load engine must have delivered what it promised (a run that sent
//! half its requests says nothing about the service), and the timeline must contain
//! CPU metrics (an HPA that never saw a metric cannot have been tested).

mod scale_down;

use crate::scenario::{Comparison, Expectation};
use crate::timeline::Timeline;
use scaleproof_load::LoadResult;

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// The check could not be made (setup failed, nothing measured).
    Error,
}

/// One check, as a JUnit testcase and a row of the summary table.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Stable identifier, e.g. `min_success_rate`.
    pub check: String,
    /// What was expected, for people: `success rate >= 95.0 %`.
    pub expected: String,
    /// What was measured, for people: `99.2 %`.
    pub measured: String,
    pub outcome: Outcome,
}

impl Verdict {
    fn new(check: &str, expected: String, measured: String, pass: bool) -> Self {
        Verdict {
            check: check.to_string(),
            expected,
            measured,
            outcome: if pass { Outcome::Pass } else { Outcome::Fail },
        }
    }

    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

/// The HPA's replica bounds for the scenario (after its overrides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaBounds {
    pub min: u32,
    pub max: u32,
}

/// Judges one scenario. `load` and `timeline` cover the same run.
pub fn judge(
    expectations: &[Expectation],
    load: &LoadResult,
    timeline: &Timeline,
    bounds: ReplicaBounds,
) -> Vec<Verdict> {
    let end_s = timeline.end_s();
    let mut verdicts = vec![
        delivered(load),
        unless_blind(metrics_seen(timeline), timeline, end_s),
    ];
    verdicts.extend(expectations.iter().map(|e| {
        let window_s = match *e {
            Expectation::ScaleUpWithinS(within) => within.min(end_s),
            _ => end_s,
        };
        unless_blind(check(e, load, timeline, bounds), timeline, window_s)
    }));
    verdicts
}

/// A failing check whose window (load start to `window_s`) went without metrics for
/// a quarter or more ([`crate::timeline::METRICS_GAP_EXCUSES`]) cannot be held against
/// the service: the HPA was blind, so neither its scaling nor the load it should have
/// absorbed says anything. It becomes an error (infrastructure, exit 2) that says
/// so; a passing check stays passed, a shorter gap leaves the verdict as it is.
fn unless_blind(mut verdict: Verdict, timeline: &Timeline, window_s: f64) -> Verdict {
    if verdict.outcome == Outcome::Fail
        && let Some(why) = timeline.blind_for(window_s)
    {
        verdict.outcome = Outcome::Error;
        verdict.measured = format!("{}; not judged: {why}", verdict.measured);
    }
    verdict
}

fn delivered(load: &LoadResult) -> Verdict {
    let measured = match &load.shortfall {
        None => format!("{} requests sent in {:.1} s", load.sent, load.duration_s),
        Some(s) => s.reasons.join("; "),
    };
    Verdict::new(
        "load_delivered",
        "the load engine delivers what the scenario promised".into(),
        measured,
        load.delivered_as_promised(),
    )
}

fn metrics_seen(timeline: &Timeline) -> Verdict {
    let with = timeline
        .samples
        .iter()
        .filter(|s| s.cpu_utilization_pct.is_some())
        .count();
    Verdict::new(
        "metrics_observed",
        "the autoscaler saw CPU metrics".into(),
        format!(
            "{with} of {} samples carried a CPU utilization",
            timeline.samples.len()
        ),
        timeline.has_metrics(),
    )
}

/// A threshold as written in the config: whole numbers without decimals, others
/// with as many as they need (up to 3), so `0.001` never prints as `0`.
pub fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{x:.0}");
    }
    let text = format!("{x:.3}");
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "0" || trimmed == "-0" {
        format!("{x}")
    } else {
        trimmed.to_string()
    }
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn check(
    e: &Expectation,
    load: &LoadResult,
    timeline: &Timeline,
    bounds: ReplicaBounds,
) -> Verdict {
    let peak_ready = timeline.peak_ready_replicas();
    match *e {
        Expectation::ScaleDownWithinS { within_s, ref from } => {
            scale_down::within(within_s, from, load, timeline, bounds)
        }
        Expectation::MaxFailedDuringScaleDown(max) => {
            scale_down::failed_during(max, load, timeline)
        }
        Expectation::MaxReplicaDirectionChanges(max) => {
            scale_down::direction_changes(max, timeline)
        }
        Expectation::MaxCpuUtilizationPct(max) => scale_down::cpu_at_most(max, timeline),
        Expectation::MinSuccessRate(min) => Verdict::new(
            "min_success_rate",
            format!("success rate >= {}", pct(min)),
            format!(
                "{} ({} of {} ok)",
                pct(load.success_rate),
                load.ok,
                load.sent
            ),
            load.sent > 0 && load.success_rate >= min,
        ),
        Expectation::MaxP95Ms(max) => {
            latency("max_p95_ms", "p95", max, load.latency_ms.map(|l| l.p95_ms))
        }
        Expectation::MaxP99Ms(max) => {
            latency("max_p99_ms", "p99", max, load.latency_ms.map(|l| l.p99_ms))
        }
        Expectation::MinThroughputPerS(min) => Verdict::new(
            "min_throughput_per_s",
            format!("throughput >= {} req/s", number(min)),
            format!("{:.1} req/s", load.throughput_per_s),
            load.throughput_per_s >= min,
        ),
        Expectation::MinPeakReplicas(min) => Verdict::new(
            "min_peak_replicas",
            format!("ready replicas reach >= {min}"),
            format!(
                "peak {peak_ready} ready (desired peak {}){}",
                timeline.peak_desired_replicas(),
                if peak_ready >= min {
                    String::new()
                } else {
                    hpa_says(timeline)
                }
            ),
            peak_ready >= min,
        ),
        Expectation::MaxPeakReplicas(max) => {
            let peak = timeline.peak_replicas();
            Verdict::new(
                "max_peak_replicas",
                format!("replicas stay <= {max}"),
                format!("peak {peak} (desired, current or ready)"),
                peak <= max,
            )
        }
        Expectation::ReachesMaxReplicas => Verdict::new(
            "reaches_max_replicas",
            format!("ready replicas reach maxReplicas ({})", bounds.max),
            format!(
                "peak {peak_ready} ready{}",
                if peak_ready >= bounds.max {
                    String::new()
                } else {
                    hpa_says(timeline)
                }
            ),
            peak_ready >= bounds.max,
        ),
        Expectation::ScaleUpWithinS(within) => {
            let first = timeline.first_scale_up_s();
            Verdict::new(
                "scale_up_within_s",
                format!("first scale-up within {} s of load start", number(within)),
                first.map_or_else(
                    || format!("no scale-up{}", hpa_says(timeline)),
                    |t| format!("at {t:.1} s"),
                ),
                first.is_some_and(|t| t <= within),
            )
        }
        Expectation::ScalingLimited => scaling_limited(timeline, bounds),
        Expectation::ThroughputPlateaus => plateau(load),
    }
}

/// Why the HPA did not scale, in its own words: its conditions that are not healthy at
/// the last sample (`AbleToScale` or `ScalingActive` False, e.g. `FailedGetScale` for a
/// target that does not exist, `FailedGetResourceMetric` for pods without a request),
/// as ` (the HPA: TYPE=False REASON: MESSAGE)`; empty when it did not say.
fn hpa_says(timeline: &Timeline) -> String {
    let Some(last) = timeline.samples.last() else {
        return String::new();
    };
    let unhealthy: Vec<String> = last
        .conditions
        .iter()
        .filter(|c| {
            c.status == "False" && matches!(c.type_.as_str(), "AbleToScale" | "ScalingActive")
        })
        .map(|c| format!("{}=False {}: {}", c.type_, c.reason, c.message))
        .collect();
    if unhealthy.is_empty() {
        String::new()
    } else {
        format!(" (the HPA: {})", unhealthy.join("; "))
    }
}

fn latency(check: &str, label: &str, max: f64, measured: Option<f64>) -> Verdict {
    Verdict::new(
        check,
        format!("{label} latency <= {} ms", number(max)),
        measured.map_or_else(|| "no response was timed".into(), |m| format!("{m:.1} ms")),
        measured.is_some_and(|m| m <= max),
    )
}

/// Demand above the cap: the HPA says so (ScalingLimited=True, TooManyReplicas), or
/// CPU stays above target while every allowed replica runs.
fn scaling_limited(timeline: &Timeline, bounds: ReplicaBounds) -> Verdict {
    let condition = timeline.saw_condition("ScalingLimited", "True", "TooManyReplicas");
    // Above the HPA's tolerance band: within it the controller would not scale even
    // without a cap, so it is no evidence of excess demand.
    let hot_at_max = timeline.samples.iter().find(|s| {
        s.current_replicas.is_some_and(|c| c >= bounds.max)
            && s.cpu_utilization_pct
                .is_some_and(|u| f64::from(u) > f64::from(s.cpu_target_pct) * (1.0 + HPA_TOLERANCE))
    });
    let measured = match (condition, hot_at_max) {
        (true, _) => "ScalingLimited=True (TooManyReplicas) reported".to_string(),
        (false, Some(s)) => format!(
            "CPU {}% > target {}% at {} replicas (t={:.1} s)",
            s.cpu_utilization_pct.unwrap_or_default(),
            s.cpu_target_pct,
            s.current_replicas.unwrap_or_default(),
            s.t_s
        ),
        (false, None) => "never limited: demand stayed within maxReplicas".into(),
    };
    Verdict::new(
        "scaling_limited",
        format!(
            "demand exceeds maxReplicas ({}): ScalingLimited/TooManyReplicas or CPU above target (+10 % tolerance) at max",
            bounds.max
        ),
        measured,
        condition || hot_at_max.is_some(),
    )
}

/// The HPA controller's default tolerance: ratios within 1 ± 0.1 keep the count.
pub const HPA_TOLERANCE: f64 = 0.1;

/// How much more throughput the second half of a run may have than the first and
/// still count as a plateau.
pub const PLATEAU_TOLERANCE: f64 = 0.25;

/// Throughput does not grow: the second half of the run (full seconds only) is at
/// most [`PLATEAU_TOLERANCE`] above the first.
fn plateau(load: &LoadResult) -> Verdict {
    // The first and last seconds are partial; leave them out.
    let seconds: Vec<f64> = load
        .timeline
        .iter()
        .skip(1)
        .take(load.timeline.len().saturating_sub(2))
        .map(|s| s.requests as f64)
        .collect();
    let expected = format!(
        "throughput plateaus (2nd half <= 1st half + {:.0} %)",
        PLATEAU_TOLERANCE * 100.0
    );
    if seconds.len() < 4 {
        return Verdict::new(
            "throughput_plateaus",
            expected,
            format!(
                "only {} full seconds of load: too short to judge",
                seconds.len()
            ),
            false,
        );
    }
    let half = seconds.len() / 2;
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (first, second) = (mean(&seconds[..half]), mean(&seconds[half..]));
    Verdict::new(
        "throughput_plateaus",
        expected,
        format!("1st half {first:.1} req/s, 2nd half {second:.1} req/s"),
        second <= first * (1.0 + PLATEAU_TOLERANCE),
    )
}

/// A cross-scenario comparison, e.g. the scaling gain.
pub fn compare(
    comparison: &Comparison,
    numerator_per_s: Option<f64>,
    denominator_per_s: Option<f64>,
) -> Verdict {
    let expected = match comparison.min_ratio {
        Some(min) => format!(
            "throughput({}) / throughput({}) >= {min:.2}",
            comparison.numerator, comparison.denominator
        ),
        None => format!(
            "throughput({}) / throughput({}) (reported)",
            comparison.numerator, comparison.denominator
        ),
    };
    let (Some(n), Some(d)) = (numerator_per_s, denominator_per_s) else {
        return Verdict {
            check: comparison.name.clone(),
            expected,
            measured: "a scenario it compares did not produce a load result".into(),
            outcome: Outcome::Error,
        };
    };
    let ratio = if d > 0.0 { n / d } else { 0.0 };
    Verdict::new(
        &comparison.name,
        expected,
        format!("{ratio:.2}x ({n:.1} vs {d:.1} req/s)"),
        comparison.min_ratio.is_none_or(|min| ratio >= min),
    )
}

#[cfg(test)]
mod tests;
