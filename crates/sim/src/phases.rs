//! Where the simulated control plane's periodic loops stand relative to a scenario,
//! and the seed their random parts are drawn from.
//!
//! On a real cluster, the kubelet's housekeeping, metrics-server's scrapes and the
//! HPA controller's syncs each run on their own clock, so the same load is seen a
//! scrape or a housekeeping earlier or later from run to run: one rehearsal shows one
//! point of a distribution. The simulated cluster draws those phases from a seed
//! (metrics-server's first scrape, each container's housekeeping waits, each pod's
//! start delay), so that a run that went red can be run again with the same phases,
//! and records when each loop ran, so a report can say where they stood when the
//! load began.
//!
//! The HPA's sync phase is not drawn: upstream queues a new HPA for its first
//! reconcile one sync period after it appears (`AddRateLimited` with a fixed
//! interval, `pkg/controller/podautoscaler/horizontal.go`), and the harness applies
//! the HPA right before the load; what it is, is recorded.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

/// How many times of one loop are kept (a scrape every second for an hour).
const KEEP: usize = 4096;

/// A random seed for a run: from the config, else drawn at start (and printed).
pub fn random_seed() -> u64 {
    // Small enough to type back on a command line.
    fastrand::u64(1..1_000_000_000)
}

/// Uniform draws in [0, 1) for one part of the simulated cluster, from the run's
/// seed and the part's own stream number, so that each part's draws do not depend
/// on how many the others made.
#[derive(Debug)]
pub struct Draws(Mutex<fastrand::Rng>);

impl Draws {
    pub fn new(seed: u64, stream: u64) -> Self {
        // splitmix64's increment spreads the streams of one seed apart.
        let mixed = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Draws(Mutex::new(fastrand::Rng::with_seed(mixed)))
    }

    pub fn unit(&self) -> f64 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).f64()
    }
}

/// The streams of [`Draws`], one per part.
pub mod stream {
    pub const SCRAPE: u64 = 1;
    pub const HOUSEKEEPING: u64 = 2;
    pub const POD_START: u64 = 3;
}

/// When each periodic loop ran.
#[derive(Debug, Default)]
pub struct PhaseLog {
    inner: Mutex<Loops>,
}

#[derive(Debug, Default)]
struct Loops {
    scrapes: VecDeque<SystemTime>,
    /// By `namespace/name` of the HPA.
    syncs: BTreeMap<String, VecDeque<SystemTime>>,
    /// By `namespace/name` of the pod.
    housekeeping: BTreeMap<String, VecDeque<SystemTime>>,
}

/// Where the loops stood at one instant: seconds until each one next ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Phases {
    /// Until metrics-server's next scrape.
    pub next_scrape_s: Option<f64>,
    /// Until each HPA's next sync (HPAs that existed then).
    pub next_hpa_sync_s: BTreeMap<String, f64>,
    /// Until each running container's next housekeeping (pods sampled before and
    /// after the instant).
    pub next_housekeeping_s: BTreeMap<String, f64>,
}

fn push(times: &mut VecDeque<SystemTime>, at: SystemTime) {
    if times.len() == KEEP {
        times.pop_front();
    }
    times.push_back(at);
}

/// Seconds from `at` to the first time at or after it, if there is one; with
/// `ran_before`, only when the loop also ran before `at`.
fn next_after(times: &VecDeque<SystemTime>, at: SystemTime, ran_before: bool) -> Option<f64> {
    if ran_before && !times.iter().any(|t| *t < at) {
        return None;
    }
    times
        .iter()
        .find(|t| **t >= at)
        .and_then(|t| t.duration_since(at).ok())
        .map(|d| d.as_secs_f64())
}

impl PhaseLog {
    fn loops(&self) -> std::sync::MutexGuard<'_, Loops> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn scraped(&self, at: SystemTime) {
        push(&mut self.loops().scrapes, at);
    }

    pub fn synced(&self, hpa: &str, at: SystemTime) {
        push(self.loops().syncs.entry(hpa.to_string()).or_default(), at);
    }

    pub fn housekept(&self, pod: &str, at: SystemTime) {
        push(
            self.loops()
                .housekeeping
                .entry(pod.to_string())
                .or_default(),
            at,
        );
    }

    /// Where the loops stood at `at`, as far as they have run since.
    pub fn at(&self, at: SystemTime) -> Phases {
        let loops = self.loops();
        let each = |series: &BTreeMap<String, VecDeque<SystemTime>>, ran_before: bool| {
            series
                .iter()
                .filter_map(|(name, times)| {
                    next_after(times, at, ran_before).map(|s| (name.clone(), s))
                })
                .collect()
        };
        Phases {
            next_scrape_s: next_after(&loops.scrapes, at, false),
            // An HPA's first sync comes one period after it appears: count it too.
            next_hpa_sync_s: each(&loops.syncs, false),
            next_housekeeping_s: each(&loops.housekeeping, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_same_seed_draws_the_same_numbers_and_streams_differ() {
        let a: Vec<f64> = (0..5).map(|_| Draws::new(42, 1).unit()).collect();
        let one = Draws::new(42, 1);
        let b: Vec<f64> = (0..5).map(|_| one.unit()).collect();
        assert!(a.iter().all(|x| *x == a[0]), "a fresh stream starts alike");
        assert_eq!(a[0], b[0]);
        assert_ne!(Draws::new(42, 1).unit(), Draws::new(42, 2).unit());
        assert_ne!(Draws::new(42, 1).unit(), Draws::new(43, 1).unit());
        assert!(b.iter().all(|x| (0.0..1.0).contains(x)));
    }

    #[test]
    fn phases_are_the_time_to_each_loops_next_run() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let s = |secs: f64| {
            if secs < 0.0 {
                t0 - Duration::from_secs_f64(-secs)
            } else {
                t0 + Duration::from_secs_f64(secs)
            }
        };
        let log = PhaseLog::default();
        for at in [-10.0, 5.0, 20.0] {
            log.scraped(s(at));
        }
        log.synced("ns/hpa", s(4.9));
        log.housekept("ns/a", s(-3.0));
        log.housekept("ns/a", s(11.5));
        // Started after t0: it had no phase at t0.
        log.housekept("ns/b", s(2.0));
        log.housekept("ns/b", s(14.0));
        let p = log.at(t0);
        assert_eq!(p.next_scrape_s, Some(5.0));
        assert!((p.next_hpa_sync_s["ns/hpa"] - 4.9).abs() < 1e-9);
        assert_eq!(p.next_housekeeping_s.get("ns/a"), Some(&11.5));
        assert!(!p.next_housekeeping_s.contains_key("ns/b"));
        assert_eq!(log.at(s(30.0)).next_scrape_s, None);
    }
}
