//! Simulated model cost: real CPU work added to a prediction.
//!
//! The service's own model takes well under a microsecond, so a 200m pod would never
//! feel CPU pressure at a modest request rate. This knob plays the part of the CPU-heavy
//! page in the Kubernetes HPA walkthrough: each request spins doing real arithmetic until
//! the *handling thread's* CPU clock (`CLOCK_THREAD_CPUTIME_ID`) has advanced by the cost.
//! CPU time, not wall time and not sleep, is what the HPA's metric counts, and it is
//! indifferent to how many other threads share the CPU quota.

use std::hint::black_box;
use std::time::{Duration, Instant};

use nix::time::{ClockId, clock_gettime};

/// How often (in work units) the loop reads its clocks; a few microseconds of work, so
/// overshoot stays negligible and the clock reads do not dominate.
const UNITS_PER_CLOCK_READ: u64 = 64;

/// The wall-clock budget of a burn: 100 times the cost plus one second.
///
/// Under a 200m CFS quota a busy thread gets 20 ms of CPU per 100 ms period, i.e. wall
/// time runs about 5 times CPU time, and one throttled period can stall a thread for
/// 80 ms; with several requests sharing the quota the ratio grows with their number.
/// 100x plus a second covers that with a wide margin while still guaranteeing that a
/// thread whose CPU clock stops advancing (frozen, or a broken clock) gives up.
pub fn wall_budget(cost: Duration) -> Duration {
    cost.saturating_mul(100)
        .saturating_add(Duration::from_secs(1))
}

/// What one burn did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurnReport {
    /// Thread CPU time spent in the loop.
    pub cpu: Duration,
    /// Wall time spent in the loop.
    pub wall: Duration,
    /// Work units performed.
    pub units: u64,
    /// Whether the loop ended because the CPU target was met (rather than the wall budget
    /// running out or the thread CPU clock being unreadable).
    pub completed: bool,
}

/// Spins on the current thread, calling `work(unit_index)` repeatedly, until the thread's
/// CPU clock has advanced by `cost` or [`wall_budget`] has elapsed. Results of `work`
/// are folded together and kept observable so the optimiser cannot drop the work.
pub fn burn(cost: Duration, mut work: impl FnMut(u64) -> u64) -> BurnReport {
    let wall_start = Instant::now();
    let Some(cpu_start) = thread_cpu_time() else {
        return BurnReport {
            cpu: Duration::ZERO,
            wall: Duration::ZERO,
            units: 0,
            completed: false,
        };
    };
    let deadline = wall_budget(cost);
    let mut units = 0u64;
    let mut folded = 0u64;
    loop {
        let cpu = thread_cpu_time().map(|now| now.saturating_sub(cpu_start));
        let wall = wall_start.elapsed();
        let completed = cpu.is_some_and(|cpu| cpu >= cost);
        if completed || cpu.is_none() || wall >= deadline {
            black_box(folded);
            return BurnReport {
                cpu: cpu.unwrap_or_default(),
                wall,
                units,
                completed,
            };
        }
        for _ in 0..UNITS_PER_CLOCK_READ {
            folded = folded.wrapping_mul(31).wrapping_add(work(black_box(units)));
            units += 1;
        }
    }
}

/// CPU time consumed so far by the calling thread, or `None` if the clock is unreadable.
pub fn thread_cpu_time() -> Option<Duration> {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .ok()
        .map(Duration::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_spends_at_least_the_cost_in_thread_cpu_time() {
        let cost = Duration::from_millis(30);
        let before = thread_cpu_time().unwrap();
        let report = burn(cost, |unit| unit.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let spent = thread_cpu_time().unwrap() - before;
        assert!(report.completed);
        assert!(report.cpu >= cost, "{report:?}");
        assert!(spent >= cost, "thread clock advanced only {spent:?}");
        assert!(report.units > 0);
    }

    #[test]
    fn zero_cost_returns_at_once() {
        let report = burn(Duration::ZERO, |unit| unit);
        assert!(report.completed);
        assert_eq!(report.units, 0);
    }

    #[test]
    fn wall_budget_is_generous_and_saturates() {
        assert_eq!(
            wall_budget(Duration::from_millis(5)),
            Duration::from_millis(1500)
        );
        assert_eq!(wall_budget(Duration::MAX), Duration::MAX);
    }
}
