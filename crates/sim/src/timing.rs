//! How fast the simulated control plane reacts: `fast` for a gate that runs in a few
//! minutes, `kind` to rehearse the timing of the kind gate on this machine.

use std::time::Duration;

use scaleproof_hpa::ControllerOptions;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[backend.local] timing`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum TimingPreset {
    /// Every loop at 1 s, pods start at once, probes retry quickly until the first
    /// success; the HPA's distrust of fresh pods shortened in proportion.
    #[default]
    Fast,
    /// The kind gate's numbers: HPA sync 5 s (k8s/kind.yaml), metrics every 15 s
    /// (metrics-server's resolution there), pods starting as on kind with the image
    /// loaded, readiness probes on their period, the controller-manager's defaults.
    Kind,
}

/// Every knob of the simulated control plane's timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub preset: TimingPreset,
    /// The HPA controller's sync period.
    pub hpa_sync_period: Duration,
    /// metrics-server's `--metric-resolution`: how often CPU is scraped.
    pub metric_resolution: Duration,
    /// How often the kubelet refreshes a container's CPU and memory (cAdvisor's
    /// per-container housekeeping): a scrape reads them as of the last refresh.
    pub housekeeping: Housekeeping,
    /// From a pod's creation to its container running (scheduling, container start;
    /// the image is already on the node), drawn per pod from this range.
    pub pod_start: StartDelay,
    /// Whether the first readiness probe waits `initialDelaySeconds` plus a random
    /// part of `periodSeconds`, as the kubelet's probe worker does, instead of
    /// probing every 100 ms until the first success.
    pub probe_on_period: bool,
    /// The HPA controller's flags.
    pub controller: ControllerOptions,
}

impl Timing {
    pub fn preset(preset: TimingPreset) -> Self {
        match preset {
            TimingPreset::Fast => Timing {
                preset,
                hpa_sync_period: Duration::from_secs(1),
                metric_resolution: Duration::from_secs(1),
                housekeeping: Housekeeping::FRESH,
                pod_start: StartDelay::fixed(Duration::ZERO),
                probe_on_period: false,
                controller: ControllerOptions::local_fast(),
            },
            TimingPreset::Kind => Timing {
                preset,
                hpa_sync_period: Duration::from_secs(5),
                metric_resolution: Duration::from_secs(15),
                housekeeping: Housekeeping::KUBELET,
                // A pod with its image on the node runs 1.2-2.1 s after creation on
                // kind (the kubelet's podStartE2EDuration of a kind node, 2.137 s at
                // second resolution); Kubernetes' pod-startup SLO measurements give
                // p50 0.9 s, p90 1.3 s, p99 1.6 s on a lightly loaded cluster.
                pod_start: StartDelay {
                    min: Duration::from_millis(1200),
                    max: Duration::from_millis(2100),
                },
                probe_on_period: true,
                controller: ControllerOptions {
                    sync_period: Duration::from_secs(5),
                    ..ControllerOptions::default()
                },
            },
        }
    }
}

/// cAdvisor's per-container housekeeping, as the kubelet configures it.
///
/// kubernetes `pkg/kubelet/cadvisor/cadvisor_linux.go` sets cAdvisor's
/// `--housekeeping_interval` to 10 s (`defaultHousekeepingInterval`), passes
/// `maxHousekeepingInterval` 15 s and allows dynamic housekeeping. cAdvisor
/// (`manager/container.go`, `nextHousekeepingInterval`) then, after each sample:
/// doubles the interval (up to the maximum) when the last two samples are equal,
/// returns to the base when they differ, and waits `jitter(interval, 1.0)`: the
/// interval plus a uniform random part of up to the interval again. So a busy
/// container is sampled every 10-20 s, an idle one every 15-30 s; the first sample
/// is taken when the container starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Housekeeping {
    /// The base interval; zero: read fresh at every scrape (no housekeeping).
    pub interval: Duration,
    /// The longest base interval of a container whose stats do not change.
    pub max_interval: Duration,
    /// Whether each wait is jittered by up to one interval more (cAdvisor's 1.0).
    pub jitter: bool,
}

impl Housekeeping {
    /// No housekeeping: each scrape reads the counters as they are.
    pub const FRESH: Housekeeping = Housekeeping {
        interval: Duration::ZERO,
        max_interval: Duration::ZERO,
        jitter: false,
    };
    /// The kubelet's cAdvisor (see the type's docs for the sources).
    pub const KUBELET: Housekeeping = Housekeeping {
        interval: Duration::from_secs(10),
        max_interval: Duration::from_secs(15),
        jitter: true,
    };

    pub fn is_fresh(&self) -> bool {
        self.interval.is_zero()
    }

    /// The base interval after a sample: doubled (up to the maximum) when the
    /// sample equals the previous one, back to the base when it does not.
    pub fn next_base(&self, current: Duration, unchanged: bool) -> Duration {
        if unchanged {
            (current * 2).min(self.max_interval.max(self.interval))
        } else {
            self.interval
        }
    }

    /// The wait until the next sample for a base interval of `base`: `base` plus
    /// `unit` (uniform in [0, 1)) times `base`, as cAdvisor's `jitter(base, 1.0)`.
    pub fn wait(&self, base: Duration, unit: f64) -> Duration {
        if self.jitter {
            base + base.mul_f64(unit.clamp(0.0, 1.0))
        } else {
            base
        }
    }

    /// The longest a busy container's sample can be old: twice the base with jitter.
    pub fn longest_busy_wait(&self) -> Duration {
        self.wait(self.interval, 1.0)
    }
}

/// A range a delay is drawn from, uniformly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StartDelay {
    pub min: Duration,
    pub max: Duration,
}

impl StartDelay {
    pub const fn fixed(delay: Duration) -> Self {
        StartDelay {
            min: delay,
            max: delay,
        }
    }

    /// The delay at `unit` (uniform in [0, 1)) of the way from `min` to `max`.
    pub fn at(&self, unit: f64) -> Duration {
        let span = self.max.saturating_sub(self.min);
        self.min + span.mul_f64(unit.clamp(0.0, 1.0))
    }
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let preset = match self.preset {
            TimingPreset::Fast => "fast",
            TimingPreset::Kind => "kind",
        };
        write!(
            f,
            "timing {preset}: HPA sync {}s, metric resolution {}s, {}, pod start {}, {}",
            self.hpa_sync_period.as_secs_f64(),
            self.metric_resolution.as_secs_f64(),
            if self.housekeeping.is_fresh() {
                "CPU read fresh at each scrape".to_string()
            } else {
                let h = &self.housekeeping;
                format!(
                    "CPU stats refreshed by housekeeping every {}-{}s (idle: up to {}s)",
                    h.interval.as_secs_f64(),
                    h.longest_busy_wait().as_secs_f64(),
                    h.wait(h.max_interval, 1.0).as_secs_f64()
                )
            },
            if self.pod_start.min == self.pod_start.max {
                format!("{}s", self.pod_start.min.as_secs_f64())
            } else {
                format!(
                    "{}-{}s",
                    self.pod_start.min.as_secs_f64(),
                    self.pod_start.max.as_secs_f64()
                )
            },
            if self.probe_on_period {
                "readiness probes on their period"
            } else {
                "readiness probed every 100 ms until the first success"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // kubernetes pkg/kubelet/cadvisor/cadvisor_linux.go (10 s base, 15 s maximum,
    // dynamic) and cadvisor manager/container.go (`nextHousekeepingInterval`,
    // `jitter(interval, 1.0)`): a busy container waits 10-20 s, an idle one
    // doubles towards 15 s and then waits 15-30 s.
    #[test]
    fn kind_housekeeping_follows_the_kubelets_cadvisor() {
        let h = Timing::preset(TimingPreset::Kind).housekeeping;
        let ten = Duration::from_secs(10);
        assert_eq!(h.wait(ten, 0.0), ten);
        assert_eq!(h.wait(ten, 0.5), Duration::from_secs(15));
        assert_eq!(h.longest_busy_wait(), Duration::from_secs(20));
        assert_eq!(h.next_base(ten, true), Duration::from_secs(15));
        assert_eq!(
            h.next_base(Duration::from_secs(15), true),
            Duration::from_secs(15)
        );
        assert_eq!(h.next_base(Duration::from_secs(15), false), ten);
        assert_eq!(h.wait(Duration::from_secs(15), 0.999).as_secs(), 29);
    }

    #[test]
    fn fast_timing_reads_fresh_and_starts_pods_at_once() {
        let fast = Timing::preset(TimingPreset::Fast);
        assert!(fast.housekeeping.is_fresh());
        assert_eq!(fast.pod_start.at(0.7), Duration::ZERO);
        let kind = Timing::preset(TimingPreset::Kind);
        assert_eq!(kind.pod_start.at(0.0), Duration::from_millis(1200));
        assert_eq!(kind.pod_start.at(0.5), Duration::from_millis(1650));
    }
}
