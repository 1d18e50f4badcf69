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
    /// How often the kubelet refreshes a container's CPU counter (cAdvisor's
    /// housekeeping): a scrape reads the counter as of its last refresh. Zero reads
    /// it fresh at every scrape.
    pub stats_interval: Duration,
    /// From a pod's creation to its container running (scheduling, container start;
    /// the image is already on the node).
    pub pod_start: Duration,
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
                stats_interval: Duration::ZERO,
                pod_start: Duration::ZERO,
                probe_on_period: false,
                controller: ControllerOptions::local_fast(),
            },
            TimingPreset::Kind => Timing {
                preset,
                hpa_sync_period: Duration::from_secs(5),
                metric_resolution: Duration::from_secs(15),
                // kubernetes pkg/kubelet/cadvisor/cadvisor_linux.go:
                // defaultHousekeepingInterval 10 s (dynamic, up to 15 s for containers
                // whose stats do not change; a loaded one changes).
                stats_interval: Duration::from_secs(10),
                // A pod with its image on the node runs 1.2-2.1 s after creation on
                // kind (the kubelet's podStartE2EDuration of a kind node, 2.137 s at
                // second resolution); Kubernetes' pod-startup SLO measurements give
                // p50 0.9 s, p90 1.3 s, p99 1.6 s on a lightly loaded cluster.
                pod_start: Duration::from_millis(1500),
                probe_on_period: true,
                controller: ControllerOptions {
                    sync_period: Duration::from_secs(5),
                    ..ControllerOptions::default()
                },
            },
        }
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
            "timing {preset}: HPA sync {}s, metric resolution {}s, {}, pod start {}s, {}",
            self.hpa_sync_period.as_secs_f64(),
            self.metric_resolution.as_secs_f64(),
            if self.stats_interval.is_zero() {
                "CPU read fresh at each scrape".to_string()
            } else {
                format!(
                    "CPU stats refreshed every {}s",
                    self.stats_interval.as_secs_f64()
                )
            },
            self.pod_start.as_secs_f64(),
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

    #[test]
    fn the_kind_preset_has_the_kind_gates_periods() {
        let kind = Timing::preset(TimingPreset::Kind);
        assert_eq!(
            format!("{}s", kind.hpa_sync_period.as_secs()),
            crate::backend::versions::HPA_SYNC_PERIOD
        );
        let resolution = format!("--metric-resolution={}s", kind.metric_resolution.as_secs());
        assert!(crate::cluster::metrics_server::KIND_ARGS.contains(&resolution.as_str()));
        assert_eq!(
            kind.controller.cpu_initialization_period,
            Duration::from_secs(300)
        );
    }
}
