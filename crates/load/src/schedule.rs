//! Intended send times of an open-loop run, in closed form: request `k` is due
//! when the cumulative number of arrivals reaches `k`, so the schedule never
//! drifts, however late the engine falls behind.

use std::time::Duration;

use super::config::{Rate, Stop};

/// Maps a request's sequence number to its intended offset from the start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    start: f64,
    end: f64,
    ramp_s: f64,
}

impl Schedule {
    pub(crate) fn new(rate: Rate) -> Self {
        Self {
            start: rate.start_per_s,
            end: rate.end_per_s,
            ramp_s: rate.ramp.as_secs_f64(),
        }
    }

    /// Arrivals expected in the first `t` seconds (the integral of the rate).
    fn arrivals_by(&self, t: f64) -> f64 {
        if self.ramp_s <= 0.0 || t <= self.ramp_s {
            let slope = self.slope();
            self.start * t + slope * t * t / 2.0
        } else {
            self.arrivals_by(self.ramp_s) + self.end * (t - self.ramp_s)
        }
    }

    /// Rate change per second during the ramp.
    fn slope(&self) -> f64 {
        if self.ramp_s > 0.0 {
            (self.end - self.start) / self.ramp_s
        } else {
            0.0
        }
    }

    /// When request `k` (counting from 0) is due.
    pub(crate) fn offset(&self, k: u64) -> Duration {
        let k = k as f64;
        let in_ramp = self.ramp_s > 0.0 && k < self.arrivals_by(self.ramp_s);
        let seconds = if in_ramp {
            // Solve start*t + slope*t^2/2 = k; this form stays exact when the
            // slope is zero or negative (a ramp down) and avoids cancellation.
            let slope = self.slope();
            let root = (self.start * self.start + 2.0 * slope * k).max(0.0).sqrt();
            let denominator = self.start + root;
            if denominator > 0.0 {
                2.0 * k / denominator
            } else {
                0.0
            }
        } else if self.ramp_s > 0.0 {
            self.ramp_s + (k - self.arrivals_by(self.ramp_s)) / self.end
        } else {
            k / self.start
        };
        Duration::from_secs_f64(seconds.max(0.0))
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
}
