//! One pod's capacity from an open-loop staircase: each step offers a fixed rate for
//! a while; a step *follows* when the pod completes what it is offered at a latency
//! near the lightest step's. Past the pod's capacity the open loop keeps offering
//! more than it completes, so a saturated step (one that completes under 90 % of its
//! rate) completes at what the pod can do under its CPU limit: the capacity is the
//! median completion rate of the saturated steps (the median, because a step's few
//! seconds of a CFS-throttled pod are noisy and the highest of them would be biased
//! up).

use crate::report::{SecondReport, StageReport};

/// When a step no longer follows its rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FollowRule {
    /// The share of the offered rate a step must complete.
    pub min_completed: f64,
    /// Its median latency may be this many times the lightest step's ...
    pub latency_factor: f64,
    /// ... or this much above it, whichever is more (a pod under a CFS quota waits
    /// out throttled periods even when lightly loaded).
    pub latency_slack_ms: f64,
}

impl FollowRule {
    /// Whether `step` completed under the share of its rate it must: the pod did
    /// not keep up, so what it completed is what it can do.
    pub fn saturated(&self, step: &Step) -> bool {
        step.completed_per_s < self.min_completed * step.rate
    }
}

impl Default for FollowRule {
    fn default() -> Self {
        FollowRule {
            min_completed: 0.9,
            latency_factor: 3.0,
            latency_slack_ms: 50.0,
        }
    }
}

/// One step of the staircase, as measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The rate offered (requests per second).
    pub rate: f64,
    /// The seconds judged (from the load's start): the hold, less its first second.
    pub from_s: f64,
    pub to_s: f64,
    /// Successful responses per second over those seconds.
    pub completed_per_s: f64,
    /// The median of the seconds' median latencies (from the intended send time).
    pub p50_ms: Option<f64>,
    pub follows: bool,
}

/// What the staircase measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    pub steps: Vec<Step>,
    /// The median completion rate of the saturated steps: one pod's capacity.
    pub per_s: f64,
    /// How many steps were saturated (the capacity's sample).
    pub saturated_steps: usize,
    /// The lightest step's median latency, the baseline the rule compares with.
    pub baseline_p50_ms: f64,
    /// The first step that did not follow its rate.
    pub knee_rate: f64,
    pub rule: FollowRule,
}

/// Why the staircase does not give a capacity.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CapacityError {
    #[error("the staircase has {stages} stages; expected a ramp and a hold per step")]
    Shape { stages: usize },
    #[error("step {number} ({rate} req/s) holds for under 2 full seconds: make the steps longer")]
    TooShort { number: usize, rate: f64 },
    #[error("no response completed in the first step ({rate} req/s): is the service answering?")]
    NoBaseline { rate: f64 },
    #[error(
        "the pod kept up with every step up to {top} req/s (it completed {completed:.1} req/s \
         there): its capacity is higher; raise the staircase's top rate (--to)"
    )]
    NeverSaturated { top: f64, completed: f64 },
    #[error(
        "the first step ({rate} req/s) already did not follow ({completed:.1} req/s completed): \
         start lower (--from)"
    )]
    SaturatedAtStart { rate: f64, completed: f64 },
}

/// Judges the staircase from the load's stages (pairs of a 1 s ramp and a hold, as
/// [`super::staircase::Staircase`] writes them) and its per-second timeline.
pub fn measure(
    stages: &[StageReport],
    seconds: &[SecondReport],
    rule: FollowRule,
) -> Result<Capacity, CapacityError> {
    if stages.is_empty() || !stages.len().is_multiple_of(2) {
        return Err(CapacityError::Shape {
            stages: stages.len(),
        });
    }
    let mut steps = Vec::new();
    for (index, pair) in stages.chunks(2).enumerate() {
        let hold = &pair[1];
        // The hold's first second still drains the ramp; judge whole seconds after it.
        let (from_s, to_s) = (hold.start_s + 1.0, hold.end_s);
        let judged: Vec<&SecondReport> = seconds
            .iter()
            .filter(|s| s.t_s >= from_s - 1e-6 && s.t_s + 1.0 <= to_s + 1e-6)
            .collect();
        if judged.len() < 2 {
            return Err(CapacityError::TooShort {
                number: index + 1,
                rate: hold.to,
            });
        }
        let completed: u64 = judged.iter().map(|s| s.requests - s.errors).sum();
        let mut p50s: Vec<f64> = judged.iter().filter_map(|s| s.p50_ms).collect();
        p50s.sort_by(f64::total_cmp);
        steps.push(Step {
            rate: hold.to,
            from_s,
            to_s,
            completed_per_s: completed as f64 / judged.len() as f64,
            p50_ms: p50s.get(p50s.len() / 2).copied(),
            follows: false,
        });
    }
    let Some(baseline_p50_ms) = steps[0].p50_ms else {
        return Err(CapacityError::NoBaseline {
            rate: steps[0].rate,
        });
    };
    let latency_limit =
        (baseline_p50_ms * rule.latency_factor).max(baseline_p50_ms + rule.latency_slack_ms);
    for step in &mut steps {
        step.follows = !rule.saturated(step) && step.p50_ms.is_some_and(|p| p <= latency_limit);
    }
    let Some(knee) = steps.iter().find(|s| !s.follows) else {
        let last = &steps[steps.len() - 1];
        return Err(CapacityError::NeverSaturated {
            top: last.rate,
            completed: last.completed_per_s,
        });
    };
    if !steps[0].follows {
        return Err(CapacityError::SaturatedAtStart {
            rate: steps[0].rate,
            completed: steps[0].completed_per_s,
        });
    }
    // A step can stop following by latency alone while the pod still keeps up; the
    // capacity must come from steps that really did not keep up, or the figure is
    // the offered rate, not what the pod can do.
    let saturated: Vec<f64> = steps
        .iter()
        .filter(|s| rule.saturated(s))
        .map(|s| s.completed_per_s)
        .collect();
    if saturated.is_empty() {
        let last = &steps[steps.len() - 1];
        return Err(CapacityError::NeverSaturated {
            top: last.rate,
            completed: last.completed_per_s,
        });
    }
    let saturated_steps = saturated.len();
    let per_s = median(saturated);
    Ok(Capacity {
        knee_rate: knee.rate,
        saturated_steps,
        steps,
        per_s,
        baseline_p50_ms,
        rule,
    })
}

/// The median of `values` (the mean of the middle two for an even count); 0 for
/// none.
pub(super) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => 0.0,
        n if n.is_multiple_of(2) => (values[mid - 1] + values[mid]) / 2.0,
        _ => values[mid],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A staircase of `rates`, `hold` seconds each after a 1 s ramp, served by a pod
    /// that completes `min(rate, capacity)` per second with `latency(rate)`.
    fn run(
        rates: &[f64],
        hold: f64,
        capacity: f64,
        latency: impl Fn(f64) -> f64,
    ) -> (Vec<StageReport>, Vec<SecondReport>) {
        let mut stages = Vec::new();
        let mut seconds = Vec::new();
        let mut at = 0.0;
        for (i, &rate) in rates.iter().enumerate() {
            for (j, duration) in [1.0, hold].into_iter().enumerate() {
                stages.push(StageReport {
                    number: 2 * i + j + 1,
                    name: None,
                    start_s: at,
                    end_s: at + duration,
                    from: rate,
                    to: rate,
                    promised: None,
                    sent: 0,
                    late: 0,
                    dropped: 0,
                });
                for k in 0..duration as usize {
                    seconds.push(SecondReport {
                        t_s: at + k as f64,
                        requests: rate.min(capacity).round() as u64,
                        errors: 0,
                        p50_ms: Some(latency(rate)),
                        p95_ms: None,
                        p99_ms: None,
                    });
                }
                at += duration;
            }
        }
        (stages, seconds)
    }

    const RATES: [f64; 6] = [4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

    #[test]
    fn a_saturated_step_completes_at_the_pods_capacity() {
        let (stages, seconds) = run(&RATES, 4.0, 40.0, |r| if r > 40.0 { 900.0 } else { 12.0 });
        let capacity = measure(&stages, &seconds, FollowRule::default()).expect("capacity");
        assert_eq!(capacity.per_s, 40.0);
        assert_eq!(capacity.knee_rate, 64.0);
        assert_eq!(capacity.baseline_p50_ms, 12.0);
        let follows: Vec<bool> = capacity.steps.iter().map(|s| s.follows).collect();
        assert_eq!(follows, [true, true, true, true, false, false]);
    }

    #[test]
    fn latency_leaving_its_baseline_marks_the_knee_before_throughput_does() {
        // 32 req/s is still completed, but waits 200 ms against 12: not following.
        let (stages, seconds) = run(&RATES, 4.0, 40.0, |r| if r >= 32.0 { 200.0 } else { 12.0 });
        let capacity = measure(&stages, &seconds, FollowRule::default()).expect("capacity");
        assert_eq!(capacity.knee_rate, 32.0);
        assert_eq!(
            capacity.per_s, 40.0,
            "the capacity is still what a full pod completed"
        );
    }

    #[test]
    fn a_pod_that_keeps_up_everywhere_says_to_go_higher() {
        let (stages, seconds) = run(&RATES, 4.0, 1000.0, |_| 12.0);
        assert_eq!(
            measure(&stages, &seconds, FollowRule::default()),
            Err(CapacityError::NeverSaturated {
                top: 128.0,
                completed: 128.0
            })
        );
    }

    #[test]
    fn slow_but_complete_steps_are_not_a_capacity() {
        // Latency rises, but every step completes its rate: no step measured the pod.
        let (stages, seconds) = run(&RATES, 4.0, 1000.0, |r| 10.0 * r);
        assert!(matches!(
            measure(&stages, &seconds, FollowRule::default()),
            Err(CapacityError::NeverSaturated { .. })
        ));
    }

    #[test]
    fn a_first_step_beyond_the_pod_says_to_start_lower() {
        let (stages, seconds) = run(&RATES, 4.0, 2.0, |_| 12.0);
        assert!(matches!(
            measure(&stages, &seconds, FollowRule::default()),
            Err(CapacityError::SaturatedAtStart { rate: 4.0, .. })
        ));
    }

    #[test]
    fn failed_responses_are_not_capacity() {
        let (stages, mut seconds) = run(&RATES, 4.0, 40.0, |r| if r > 40.0 { 900.0 } else { 12.0 });
        for s in seconds.iter_mut().filter(|s| s.t_s >= 20.0) {
            s.errors = s.requests / 2;
        }
        let capacity = measure(&stages, &seconds, FollowRule::default()).expect("capacity");
        assert!(capacity.per_s <= 40.0);
        assert!(capacity.steps.last().unwrap().completed_per_s <= 20.0);
    }

    #[test]
    fn short_or_odd_staircases_are_refused() {
        let (stages, seconds) = run(&RATES, 2.0, 40.0, |_| 12.0);
        assert_eq!(
            measure(&stages, &seconds, FollowRule::default()),
            Err(CapacityError::TooShort {
                number: 1,
                rate: 4.0
            })
        );
        let (stages, seconds) = run(&RATES, 4.0, 40.0, |_| 12.0);
        assert_eq!(
            measure(&stages[..3], &seconds, FollowRule::default()),
            Err(CapacityError::Shape { stages: 3 })
        );
    }
}
