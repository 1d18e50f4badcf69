use super::*;
use crate::fixtures::{load, short, timeline, too_many_replicas};
use crate::scenario::Comparison;

const BOUNDS: ReplicaBounds = ReplicaBounds { min: 1, max: 3 };

fn only(expectation: Expectation, load: &LoadResult, timeline: &Timeline) -> Verdict {
    let verdicts = judge(&[expectation], load, timeline, BOUNDS);
    assert_eq!(verdicts.len(), 3, "two guards plus the expectation");
    verdicts[2].clone()
}

fn scaling() -> Timeline {
    timeline(&[
        (0.0, 1, 1, None),
        (1.0, 1, 1, Some(180)),
        (2.0, 3, 1, Some(200)),
        (4.0, 3, 3, Some(90)),
    ])
}

#[test]
fn guards_are_always_present_and_pass_on_a_clean_run() {
    let verdicts = judge(&[], &load(100, 100, &[50, 50], 10.0), &scaling(), BOUNDS);
    let checks: Vec<_> = verdicts
        .iter()
        .map(|v| (v.check.as_str(), v.outcome))
        .collect();
    assert_eq!(
        checks,
        [
            ("load_delivered", Outcome::Pass),
            ("metrics_observed", Outcome::Pass)
        ]
    );
}

#[test]
fn an_engine_that_under_delivered_fails_the_guard() {
    let verdicts = judge(
        &[],
        &short(load(400, 400, &[200, 200], 10.0), 1000),
        &scaling(),
        BOUNDS,
    );
    assert_eq!(verdicts[0].outcome, Outcome::Fail);
    assert!(
        verdicts[0].measured.contains("sent 400 of 1000"),
        "{}",
        verdicts[0].measured
    );
}

#[test]
fn a_timeline_without_metrics_fails_the_guard() {
    let blind = timeline(&[(0.0, 1, 1, None), (1.0, 1, 1, None)]);
    let verdicts = judge(&[], &load(10, 10, &[10], 1.0), &blind, BOUNDS);
    assert_eq!(verdicts[1].outcome, Outcome::Fail);
    assert_eq!(
        verdicts[1].measured,
        "0 of 2 samples carried a CPU utilization"
    );
}

#[test]
fn success_rate_is_compared_inclusively_and_explained() {
    let l = load(1000, 950, &[100; 10], 10.0);
    let v = only(Expectation::MinSuccessRate(0.95), &l, &scaling());
    assert_eq!(v.outcome, Outcome::Pass);
    assert_eq!(v.expected, "success rate >= 95.0 %");
    assert_eq!(v.measured, "95.0 % (950 of 1000 ok)");
    let l = load(1000, 949, &[100; 10], 10.0);
    assert_eq!(
        only(Expectation::MinSuccessRate(0.95), &l, &scaling()).outcome,
        Outcome::Fail
    );
}

#[test]
fn nothing_sent_never_passes_a_success_rate() {
    let l = load(0, 0, &[], 0.0);
    assert_eq!(
        only(Expectation::MinSuccessRate(0.0), &l, &scaling()).outcome,
        Outcome::Fail
    );
}

#[test]
fn latency_bounds_use_the_corrected_percentiles() {
    let l = load(100, 100, &[100], 400.0);
    assert_eq!(
        only(Expectation::MaxP95Ms(400.0), &l, &scaling()).outcome,
        Outcome::Pass
    );
    let v = only(Expectation::MaxP95Ms(399.0), &l, &scaling());
    assert_eq!(
        (v.outcome, v.measured.as_str()),
        (Outcome::Fail, "400.0 ms")
    );
    // p99 is 1.5 x p95 in the fixture.
    assert_eq!(
        only(Expectation::MaxP99Ms(599.0), &l, &scaling()).outcome,
        Outcome::Fail
    );
    let mut untimed = l.clone();
    untimed.latency_ms = None;
    let v = only(Expectation::MaxP95Ms(1e9), &untimed, &scaling());
    assert_eq!(
        (v.outcome, v.measured.as_str()),
        (Outcome::Fail, "no response was timed")
    );
}

#[test]
fn peak_replicas_count_ready_replicas() {
    let l = load(10, 10, &[10], 1.0);
    // Desired reached 3 but only 1 replica was ever ready: not "reached 2".
    let slow = timeline(&[(0.0, 1, 1, Some(200)), (1.0, 3, 1, Some(200))]);
    let v = only(Expectation::MinPeakReplicas(2), &l, &slow);
    assert_eq!(
        (v.outcome, v.measured.as_str()),
        (Outcome::Fail, "peak 1 ready (desired peak 3)")
    );
    assert_eq!(
        only(Expectation::MinPeakReplicas(3), &l, &scaling()).outcome,
        Outcome::Pass
    );
}

#[test]
fn max_peak_replicas_counts_any_replica_count() {
    let l = load(10, 10, &[10], 1.0);
    let asked = timeline(&[(0.0, 1, 1, Some(200)), (1.0, 2, 1, Some(200))]);
    assert_eq!(
        only(Expectation::MaxPeakReplicas(1), &l, &asked).outcome,
        Outcome::Fail
    );
    let flat = timeline(&[(0.0, 1, 1, Some(200)), (1.0, 1, 1, Some(200))]);
    assert_eq!(
        only(Expectation::MaxPeakReplicas(1), &l, &flat).outcome,
        Outcome::Pass
    );
}

#[test]
fn reaching_max_replicas_uses_the_scenario_bounds() {
    let l = load(10, 10, &[10], 1.0);
    assert_eq!(
        only(Expectation::ReachesMaxReplicas, &l, &scaling()).outcome,
        Outcome::Pass
    );
    let two = timeline(&[(0.0, 2, 2, Some(60))]);
    let v = only(Expectation::ReachesMaxReplicas, &l, &two);
    assert_eq!(
        (v.outcome, v.expected.as_str()),
        (Outcome::Fail, "ready replicas reach maxReplicas (3)")
    );
}

#[test]
fn first_scale_up_must_come_in_time() {
    let l = load(10, 10, &[10], 1.0);
    let v = only(Expectation::ScaleUpWithinS(2.0), &l, &scaling());
    assert_eq!(
        (v.outcome, v.measured.as_str()),
        (Outcome::Pass, "at 2.0 s")
    );
    assert_eq!(
        only(Expectation::ScaleUpWithinS(1.5), &l, &scaling()).outcome,
        Outcome::Fail
    );
    let flat = timeline(&[(0.0, 1, 1, Some(10)), (5.0, 1, 1, Some(10))]);
    let v = only(Expectation::ScaleUpWithinS(60.0), &l, &flat);
    assert_eq!(
        (v.outcome, v.measured.as_str()),
        (Outcome::Fail, "no scale-up")
    );
}

#[test]
fn scaling_limited_accepts_the_condition_or_hot_cpu_at_max() {
    let l = load(10, 10, &[10], 1.0);
    let mut reported = timeline(&[(0.0, 3, 3, Some(40))]);
    reported.samples[0].conditions.push(too_many_replicas());
    assert_eq!(
        only(Expectation::ScalingLimited, &l, &reported).outcome,
        Outcome::Pass
    );
    let hot = timeline(&[(0.0, 3, 3, Some(75))]);
    let v = only(Expectation::ScalingLimited, &l, &hot);
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.measured);
    assert!(
        v.measured.starts_with("CPU 75% > target 50% at 3 replicas"),
        "{}",
        v.measured
    );
    // 54 % against a 50 % target is within the HPA's tolerance: no evidence.
    let within_tolerance = timeline(&[(0.0, 3, 3, Some(54))]);
    assert_eq!(
        only(Expectation::ScalingLimited, &l, &within_tolerance).outcome,
        Outcome::Fail
    );
    let cool = timeline(&[(0.0, 3, 3, Some(45)), (1.0, 2, 2, Some(90))]);
    assert_eq!(
        only(Expectation::ScalingLimited, &l, &cool).outcome,
        Outcome::Fail
    );
}

#[test]
fn throughput_plateau_compares_the_halves_of_full_seconds() {
    // First and last seconds are partial and ignored.
    let flat = load(10, 10, &[5, 40, 41, 39, 40, 42, 40, 3], 1.0);
    let v = only(Expectation::ThroughputPlateaus, &flat, &scaling());
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.measured);
    let growing = load(10, 10, &[5, 40, 40, 40, 80, 120, 120, 3], 1.0);
    assert_eq!(
        only(Expectation::ThroughputPlateaus, &growing, &scaling()).outcome,
        Outcome::Fail
    );
    let too_short = load(10, 10, &[5, 40, 3], 1.0);
    let v = only(Expectation::ThroughputPlateaus, &too_short, &scaling());
    assert!(v.measured.contains("too short"), "{}", v.measured);
}

#[test]
fn scaling_gain_is_a_throughput_ratio() {
    let gain = Comparison {
        name: "scaling-gain".into(),
        numerator: "bottleneck".into(),
        denominator: "restricted".into(),
        min_ratio: Some(1.5),
    };
    let (three, one) = (100.0, 40.0);
    let v = compare(&gain, Some(three), Some(one));
    assert_eq!(
        (v.outcome, v.measured.as_str()),
        (Outcome::Pass, "2.50x (100.0 vs 40.0 req/s)")
    );
    let v = compare(&gain, Some(one), Some(three));
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(compare(&gain, None, Some(one)).outcome, Outcome::Error);
}

#[test]
fn thresholds_print_as_written() {
    assert_eq!(super::number(2000.0), "2000");
    assert_eq!(super::number(0.001), "0.001");
    assert_eq!(super::number(250.5), "250.5");
    assert_eq!(super::number(0.0001), "0.0001");
    assert_eq!(super::number(45.0), "45");
}

// An HPA that cannot scale says why in its conditions; a failed scaling check quotes
// them, so "no scale-up" is never the whole story (an HPA aimed at a Deployment that
// does not exist, pods without a CPU request, ...).
#[test]
fn a_failed_scaling_check_quotes_the_hpas_own_reason() {
    let l = load(10, 10, &[10], 1.0);
    let mut stuck = timeline(&[(0.0, 1, 1, Some(10)), (5.0, 1, 1, Some(10))]);
    stuck.samples[1]
        .conditions
        .push(crate::timeline::Condition {
            type_: "AbleToScale".into(),
            status: "False".into(),
            reason: "FailedGetScale".into(),
            message: "deployments.apps \"nope\" not found".into(),
        });
    let quoted =
        " (the HPA: AbleToScale=False FailedGetScale: deployments.apps \"nope\" not found)";
    let v = only(Expectation::ScaleUpWithinS(60.0), &l, &stuck);
    assert_eq!(v.measured, format!("no scale-up{quoted}"));
    let v = only(Expectation::MinPeakReplicas(2), &l, &stuck);
    assert!(v.measured.ends_with(quoted), "{}", v.measured);
    let v = only(Expectation::ReachesMaxReplicas, &l, &stuck);
    assert!(v.measured.ends_with(quoted), "{}", v.measured);
    // A check that passes does not: nothing to explain.
    let v = only(Expectation::MinPeakReplicas(1), &l, &stuck);
    assert!(!v.measured.contains("the HPA"), "{}", v.measured);
}

fn with_gap(mut t: Timeline, from_s: f64, to_s: f64) -> Timeline {
    t.metrics_gaps.push(crate::timeline::MetricsGap {
        from_s,
        to_s,
        cause: "API server answered 503 ServiceUnavailable: service unavailable".into(),
        recovered: true,
    });
    t
}

/// A metrics gap is judged like a classifier: a blind window turns a failing scaling
/// check into "not judged" (infrastructure) with the gap named; a short gap leaves a
/// real failure red; a service that scaled through a gap stays green.
#[test]
fn a_metrics_gap_excuses_only_a_blind_window() {
    let flat = timeline(&[
        (0.0, 1, 1, None),
        (10.0, 1, 1, None),
        (20.0, 1, 1, None),
        (40.0, 1, 1, Some(30)),
    ]);
    let load = load(100, 100, &[50, 50], 40.0);

    // Blind from 5 to 35 s of a 40 s window: not judged, and it says why.
    let blind = with_gap(flat.clone(), 5.0, 35.0);
    let v = only(Expectation::MinPeakReplicas(2), &load, &blind);
    assert_eq!(v.outcome, Outcome::Error, "{}", v.measured);
    assert!(v.measured.contains("not judged"), "{}", v.measured);
    assert!(v.measured.contains("30.0 of the 40.0 s"), "{}", v.measured);
    assert!(
        v.measured.contains("503 ServiceUnavailable"),
        "{}",
        v.measured
    );

    // 4 s of 40: the HPA had time; a service that did not scale is red.
    let short_gap = with_gap(flat.clone(), 5.0, 9.0);
    let v = only(Expectation::MinPeakReplicas(2), &load, &short_gap);
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.measured);

    // The scale-up window is its own: blind after it does not excuse a miss in it.
    let late_gap = with_gap(flat, 25.0, 40.0);
    let v = only(Expectation::ScaleUpWithinS(20.0), &load, &late_gap);
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.measured);

    // Scaled through a long gap: passing checks stay passed.
    let scaled = with_gap(scaling(), 0.5, 3.5);
    let v = only(Expectation::MinPeakReplicas(3), &load, &scaled);
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.measured);
}

#[test]
fn a_run_blind_throughout_is_infrastructure_not_a_missing_metric() {
    let blind = with_gap(
        timeline(&[(0.0, 1, 1, None), (10.0, 1, 1, None)]),
        0.0,
        10.0,
    );
    let verdicts = judge(&[], &load(10, 10, &[10], 10.0), &blind, BOUNDS);
    assert_eq!(verdicts[1].check, "metrics_observed");
    assert_eq!(
        verdicts[1].outcome,
        Outcome::Error,
        "{}",
        verdicts[1].measured
    );
}
