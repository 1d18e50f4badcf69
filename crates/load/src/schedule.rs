//! Intended send times of an open-loop run, in closed form: request `k` is due
//! when the cumulative number of arrivals reaches `k`, so the schedule never
//! drifts, however late the engine falls behind.
//!
//! The rate is piecewise linear: a constant rate is one piece, a ramp two (the ramp,
//! then its end rate held), stages one piece each. After the last piece the last
//! rate holds.

use std::time::Duration;

use super::config::{Rate, Stages, Stop};

/// The start of one linear piece of the rate.
#[derive(Debug, Clone, Copy)]
struct Knot {
    /// Seconds from the start of the run.
    t: f64,
    /// Requests per second at `t`.
    rate: f64,
    /// Arrivals expected before `t`.
    arrivals: f64,
}

/// Maps a request's sequence number to its intended offset from the start.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// In time order; the rate moves linearly from one knot to the next and holds
    /// at the last knot's rate after it.
    knots: Vec<Knot>,
}

/// What `offset` answers for a request that never comes due (the rate fell to 0
/// for good before it).
const NEVER: Duration = Duration::from_secs(u32::MAX as u64);

impl Schedule {
    pub(crate) fn new(rate: Rate) -> Self {
        let mut points = vec![(0.0, rate.start_per_s)];
        if !rate.ramp.is_zero() {
            points.push((rate.ramp.as_secs_f64(), rate.end_per_s));
        }
        Self::from_points(&points)
    }

    /// The schedule of a rate-staged run.
    pub(crate) fn staged(stages: &Stages) -> Self {
        let mut points = vec![(0.0, stages.start)];
        let mut t = 0.0;
        for stage in &stages.stages {
            t += stage.duration.as_secs_f64();
            points.push((t, stage.target));
        }
        Self::from_points(&points)
    }

    fn from_points(points: &[(f64, f64)]) -> Self {
        let mut knots: Vec<Knot> = Vec::with_capacity(points.len());
        for &(t, rate) in points {
            let arrivals = match knots.last() {
                Some(previous) => {
                    previous.arrivals + (previous.rate + rate) / 2.0 * (t - previous.t)
                }
                None => 0.0,
            };
            knots.push(Knot { t, rate, arrivals });
        }
        Self { knots }
    }

    /// The piece that `t` falls in: its knot and the next one (`None` after the last).
    fn piece_at(&self, t: f64) -> (Knot, Option<Knot>) {
        let i = self
            .knots
            .iter()
            .rposition(|k| k.t <= t)
            .unwrap_or_default();
        (self.knots[i], self.knots.get(i + 1).copied())
    }

    /// Arrivals expected in the first `t` seconds (the integral of the rate).
    fn arrivals_by(&self, t: f64) -> f64 {
        let (knot, next) = self.piece_at(t);
        let dt = t - knot.t;
        let slope = next.map_or(0.0, |n| (n.rate - knot.rate) / (n.t - knot.t));
        knot.arrivals + knot.rate * dt + slope * dt * dt / 2.0
    }

    /// When request `k` (counting from 0) is due.
    pub(crate) fn offset(&self, k: u64) -> Duration {
        let k = k as f64;
        // The last knot whose arrivals do not exceed k: request k is due in its piece.
        let i = self
            .knots
            .iter()
            .rposition(|knot| knot.arrivals <= k)
            .unwrap_or_default();
        let knot = self.knots[i];
        let m = k - knot.arrivals;
        let seconds = match self.knots.get(i + 1) {
            Some(next) => {
                let slope = (next.rate - knot.rate) / (next.t - knot.t);
                // Solve rate*t + slope*t^2/2 = m; this form stays exact when the
                // slope is zero or negative (a ramp down) and avoids cancellation.
                let root = (knot.rate * knot.rate + 2.0 * slope * m).max(0.0).sqrt();
                let denominator = knot.rate + root;
                if denominator > 0.0 {
                    2.0 * m / denominator
                } else {
                    0.0
                }
            }
            None if knot.rate > 0.0 => m / knot.rate,
            None => return NEVER,
        };
        Duration::from_secs_f64((knot.t + seconds).max(0.0))
    }

    /// How many requests a run with `stop` schedules in total.
    pub(crate) fn total(&self, stop: Stop) -> u64 {
        match stop {
            Stop::Requests(n) => n,
            Stop::Duration(d) => self.due_before(d),
        }
    }

    /// How many requests are due strictly before offset `t`.
    pub(crate) fn due_before(&self, t: Duration) -> u64 {
        // Start from the closed-form estimate and correct for rounding, so the
        // count agrees exactly with `offset`.
        let mut n = self.arrivals_by(t.as_secs_f64()).ceil().max(0.0) as u64;
        while n > 0 && self.offset(n - 1) >= t {
            n -= 1;
        }
        while self.offset(n) < t {
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Ramped, Stage};

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let s = Schedule::new(Rate::constant(200.0));
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(200), Duration::from_secs(1));
        assert_eq!(s.total(Stop::Duration(Duration::from_secs(3))), 600);
        assert_eq!(s.total(Stop::Requests(7)), 7);
    }

    #[test]
    fn ramp_arrivals_match_the_integral_and_times_increase() {
        // 10 -> 30 req/s over 10 s: 200 arrivals in the ramp, then 30 per second.
        let s = Schedule::new(Rate::ramp(10.0, 30.0, Duration::from_secs(10)));
        assert_eq!(s.due_before(Duration::from_secs(10)), 200);
        assert_eq!(s.due_before(Duration::from_secs(12)), 260);
        let mut previous = Duration::ZERO;
        for k in 1..300 {
            let t = s.offset(k);
            assert!(t > previous, "offset({k}) = {t:?} not after {previous:?}");
            previous = t;
        }
        // A ramp down is solvable as well.
        let down = Schedule::new(Rate::ramp(30.0, 10.0, Duration::from_secs(10)));
        assert_eq!(down.due_before(Duration::from_secs(10)), 200);
    }

    #[test]
    fn stages_from_zero_up_hold_and_down_to_a_trickle() {
        let stage = |s: u64, target: f64| Stage {
            duration: Duration::from_secs(s),
            target,
        };
        let stages = Stages {
            ramped: Ramped::Rate,
            start: 0.0,
            stages: vec![
                stage(10, 100.0),
                stage(10, 100.0),
                stage(2, 4.0),
                stage(10, 4.0),
            ],
        };
        let s = Schedule::staged(&stages);
        // 0 -> 100 over 10 s: 500; 100 for 10 s: 1000; 100 -> 4 over 2 s: 104; 4 for 10 s: 40.
        assert_eq!(s.due_before(Duration::from_secs(10)), 500);
        assert_eq!(s.due_before(Duration::from_secs(20)), 1500);
        assert_eq!(s.due_before(Duration::from_secs(22)), 1604);
        assert_eq!(s.total(Stop::Duration(stages.total())), 1644);
        assert_eq!(s.offset(0), Duration::ZERO, "a ramp from 0 starts at once");
        let mut previous = Duration::ZERO;
        for k in 1..1644 {
            let t = s.offset(k);
            assert!(t > previous, "offset({k}) = {t:?} not after {previous:?}");
            previous = t;
        }
        // A rate that falls to 0 for good: nothing more is ever due.
        let ending = Schedule::staged(&Stages {
            ramped: Ramped::Rate,
            start: 10.0,
            stages: vec![stage(2, 0.0)],
        });
        assert_eq!(ending.due_before(Duration::from_secs(2)), 10);
        assert_eq!(ending.due_before(Duration::from_secs(100)), 10);
    }
}
