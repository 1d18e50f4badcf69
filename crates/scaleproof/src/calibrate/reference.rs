//! The cross-check of a capacity: one more pod, capped and pinned like the
//! staircase's, driven by a closed loop (the gate's own way of measuring one pod's
//! throughput, as `one-pod-capacity` and `restricted-2000` do) in a lane beside the
//! staircase, compared over the very seconds of the staircase's saturated steps.
//!
//! Why the same seconds: on a shared host the CPU time a unit of real work costs
//! drifts. Here a fixed Python loop cost 8.7-13.6 ms per 5 s window within one
//! minute, on both cores at once, with no other load; the FastAPI example's one pod
//! served 16.4-22.4 req/s over seven identical gate runs. Two measurements minutes
//! apart compare the host's moments, not the two methods; two pods measured in the
//! same seconds see the same host.

use crate::report::SecondReport;

use super::capacity::{Capacity, median};
use super::staircase::Staircase;

/// The reference scenario's name, in the report and on the test binary's command line.
pub const SCENARIO: &str = "calibrate-reference";

/// How much longer than the staircase the reference's load runs: the two lanes'
/// pods become ready seconds apart, and the reference must run through every
/// saturated step.
pub const SLACK_S: f64 = 20.0;

/// The `[[scenario]]` table: one pod pinned like the staircase's, a closed loop of
/// as many workers as the staircase keeps requests outstanding, for the staircase's
/// length and [`SLACK_S`].
pub fn scenario(staircase: &Staircase) -> toml::Table {
    let mut scenario = toml::Table::new();
    scenario.insert("name".into(), SCENARIO.into());
    scenario.insert(
        "description".into(),
        format!(
            "scaleproof calibrate's cross-check: one more pod, a closed loop of {} workers \
             beside the staircase",
            staircase.max_in_flight
        )
        .into(),
    );
    scenario.insert(
        "concurrency".into(),
        i64::from(staircase.max_in_flight).into(),
    );
    scenario.insert(
        "duration_s".into(),
        (staircase.duration_s() + SLACK_S).into(),
    );
    scenario.insert("hpa".into(), super::staircase::pinned_at_one());
    scenario
}

/// One saturated step, on both pods.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparedStep {
    /// The rate the staircase offered.
    pub rate: f64,
    /// What the staircase's pod completed per second in the step's judged seconds.
    pub staircase_per_s: f64,
    /// What the reference's pod completed per second in the same seconds.
    pub reference_per_s: f64,
}

/// The capacity against the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub steps: Vec<ComparedStep>,
    /// The median of the reference's per-step rates: the capacity's own estimator
    /// applied to the reference, so the two differ by method and pod, not by
    /// statistic.
    pub per_s: f64,
    /// `capacity / per_s`.
    pub ratio: f64,
    /// Seconds by which the reference's load started after the staircase's
    /// (negative: before).
    pub offset_s: f64,
    /// Saturated steps the reference did not run through (it started late or
    /// ended early), left out of the comparison.
    pub uncovered_steps: usize,
}

/// Why the reference gives no comparison.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReferenceError {
    #[error(
        "the reference pod's load ran {from_s:.1}-{to_s:.1} s of the staircase's time and \
         covered none of its saturated steps, so the two were not measured in the same \
         seconds (did the node's CPU fit only one lane?)"
    )]
    NotBeside { from_s: f64, to_s: f64 },
    #[error("the reference pod completed no request in the saturated steps' seconds")]
    NothingCompleted,
}

/// Compares `capacity`'s saturated steps with the reference's per-second timeline
/// `seconds`, whose load started `offset_s` after the staircase's and lasted
/// `duration_s`.
///
/// A reference second `t` covers `[t + offset_s, t + offset_s + 1)` of the
/// staircase's time; it counts in a step by the share of it inside the step's judged
/// seconds, so a fractional offset loses nothing. Seconds absent from the timeline
/// (none completed) count as zero. The reference's first second is left out: its
/// workers are still opening connections.
pub fn compare(
    capacity: &Capacity,
    offset_s: f64,
    duration_s: f64,
    seconds: &[SecondReport],
) -> Result<Reference, ReferenceError> {
    let (span_from, span_to) = (offset_s + 1.0, offset_s + duration_s);
    let saturated = capacity.steps.iter().filter(|s| capacity.rule.saturated(s));
    let mut steps = Vec::new();
    let mut uncovered_steps = 0;
    for step in saturated {
        // The reference must run through the whole step, or a ramp-up or a stop
        // would be measured as the pod's rate.
        if span_from > step.from_s + 1e-6 || span_to < step.to_s - 1e-6 {
            uncovered_steps += 1;
            continue;
        }
        let completed: f64 = seconds
            .iter()
            .map(|s| {
                let (from, to) = (s.t_s + offset_s, s.t_s + offset_s + 1.0);
                let overlap = (to.min(step.to_s) - from.max(step.from_s)).max(0.0);
                overlap * (s.requests - s.errors) as f64
            })
            .sum();
        steps.push(ComparedStep {
            rate: step.rate,
            staircase_per_s: step.completed_per_s,
            reference_per_s: completed / (step.to_s - step.from_s),
        });
    }
    if steps.is_empty() {
        return Err(ReferenceError::NotBeside {
            from_s: span_from,
            to_s: span_to,
        });
    }
    let per_s = median(steps.iter().map(|s| s.reference_per_s).collect());
    if per_s <= 0.0 {
        return Err(ReferenceError::NothingCompleted);
    }
    Ok(Reference {
        steps,
        per_s,
        ratio: capacity.per_s / per_s,
        offset_s,
        uncovered_steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::capacity::{FollowRule, Step};

    /// Steps of `hold` judged seconds back to back from 10 s; the pod completes
    /// `min(rate, 20)`.
    fn capacity(rates: &[f64]) -> Capacity {
        let steps: Vec<Step> = rates
            .iter()
            .enumerate()
            .map(|(i, &rate)| Step {
                rate,
                from_s: 10.0 + 5.0 * i as f64 + 2.0,
                to_s: 10.0 + 5.0 * (i + 1) as f64,
                completed_per_s: rate.min(20.0),
                p50_ms: Some(if rate > 20.0 { 500.0 } else { 10.0 }),
                follows: rate <= 20.0,
            })
            .collect();
        Capacity {
            per_s: 20.0,
            saturated_steps: steps.iter().filter(|s| !s.follows).count(),
            knee_rate: 32.0,
            baseline_p50_ms: 10.0,
            rule: FollowRule::default(),
            steps,
        }
    }

    /// A closed loop that completes `per_s(t)` in the second starting at `t`.
    fn timeline(len: usize, per_s: impl Fn(f64) -> u64) -> Vec<SecondReport> {
        (0..len)
            .map(|t| SecondReport {
                t_s: t as f64,
                requests: per_s(t as f64),
                errors: 0,
                p50_ms: Some(500.0),
                p95_ms: None,
                p99_ms: None,
            })
            .collect()
    }

    const RATES: [f64; 5] = [8.0, 16.0, 32.0, 64.0, 128.0];

    #[test]
    fn a_reference_at_the_same_rate_agrees_whatever_its_offset() {
        for offset in [-3.0, -0.4, 0.0, 0.7] {
            let reference = compare(&capacity(&RATES), offset, 60.0, &timeline(60, |_| 20))
                .unwrap_or_else(|e| panic!("offset {offset}: {e}"));
            assert_eq!(reference.steps.len(), 3, "the three saturated steps");
            assert!((reference.per_s - 20.0).abs() < 1e-9, "{reference:?}");
            assert!((reference.ratio - 1.0).abs() < 1e-9);
            assert_eq!(reference.uncovered_steps, 0);
        }
    }

    #[test]
    fn only_the_saturated_steps_seconds_count() {
        // The reference is fast in the light steps' seconds (before 22 s of the
        // staircase) and serves 16 req/s from then on: 16 is what it is compared at.
        let reference = compare(
            &capacity(&RATES),
            0.0,
            60.0,
            &timeline(60, |t| if t < 22.0 { 40 } else { 16 }),
        )
        .expect("compared");
        assert!((reference.per_s - 16.0).abs() < 1e-9, "{reference:?}");
        assert!((reference.ratio - 1.25).abs() < 1e-9);
    }

    #[test]
    fn a_fractional_offset_weighs_the_straddling_seconds() {
        // 10 req/s in even seconds, 30 in odd ones, shifted by half a second: every
        // staircase second holds half of each, so every step sees 20.
        let reference = compare(
            &capacity(&RATES),
            0.5,
            60.0,
            &timeline(60, |t| if (t as u64).is_multiple_of(2) { 10 } else { 30 }),
        )
        .expect("compared");
        for step in &reference.steps {
            assert!((step.reference_per_s - 20.0).abs() < 1e-9, "{step:?}");
        }
    }

    #[test]
    fn steps_the_reference_did_not_run_through_are_left_out_and_counted() {
        // It ended at 30 s of the staircase's time: the 32 and 64 req/s steps
        // (22-25 s, 27-30 s) are inside, 128 (32-35 s) is not.
        let reference =
            compare(&capacity(&RATES), 0.0, 30.0, &timeline(30, |_| 18)).expect("compared");
        assert_eq!(reference.steps.len(), 2);
        assert_eq!(reference.uncovered_steps, 1);
        assert!((reference.per_s - 18.0).abs() < 1e-9);
    }

    #[test]
    fn a_reference_run_after_the_staircase_is_no_comparison() {
        // One lane: the reference ran once the staircase had finished.
        let error =
            compare(&capacity(&RATES), 40.0, 60.0, &timeline(60, |_| 20)).expect_err("not beside");
        assert!(matches!(error, ReferenceError::NotBeside { .. }));
        assert!(error.to_string().contains("one lane"), "{error}");
    }

    #[test]
    fn failed_responses_and_silent_seconds_are_not_throughput() {
        let mut seconds = timeline(60, |_| 20);
        for s in seconds.iter_mut().filter(|s| s.t_s >= 20.0) {
            s.errors = 20;
        }
        assert_eq!(
            compare(&capacity(&RATES), 0.0, 60.0, &seconds),
            Err(ReferenceError::NothingCompleted)
        );
        // A stalled pod's seconds are missing from the timeline: zero, not skipped.
        let gaps: Vec<SecondReport> = timeline(60, |_| 20)
            .into_iter()
            .filter(|s| (s.t_s as u64).is_multiple_of(2))
            .collect();
        let reference = compare(&capacity(&RATES), 0.0, 60.0, &gaps).expect("compared");
        assert!(reference.per_s < 15.0, "{reference:?}");
    }
}
