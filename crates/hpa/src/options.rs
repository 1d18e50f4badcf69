//! The kube-controller-manager flags that shape the HPA controller
//! (`HPAControllerConfiguration`, `--horizontal-pod-autoscaler-*`).

use std::time::Duration;

/// Controller-wide settings. [`Default`] gives the upstream flag defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerOptions {
    /// `--horizontal-pod-autoscaler-sync-period`: how often the caller should reconcile.
    /// The autoscaler never reads a clock, so this is advice to the caller's loop.
    pub sync_period: Duration,
    /// `--horizontal-pod-autoscaler-tolerance`: usage ratios within `1 ± tolerance`
    /// keep the current replica count.
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`: after a pod starts, its
    /// CPU samples are distrusted until it is ready and a full metric window has passed.
    pub cpu_initialization_period: Duration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`: a pod whose readiness
    /// changed within this time after start is treated as never having been ready.
    pub initial_readiness_delay: Duration,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`: scale-down window of the
    /// legacy path, and of `behavior.scaleDown` when it sets no window.
    pub downscale_stabilization_window: Duration,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            sync_period: Duration::from_secs(15),
            tolerance: 0.1,
            cpu_initialization_period: Duration::from_secs(5 * 60),
            initial_readiness_delay: Duration::from_secs(30),
            downscale_stabilization_window: Duration::from_secs(5 * 60),
        }
    }
}

impl ControllerOptions {
    /// Settings for the local backend, whose scenarios last a minute or two rather than
    /// the quarter hour a cluster needs to show a full scale cycle.
    ///
    /// The controller syncs every second, as often as the local metrics are sampled
    /// (on kind: every 5 s, with metrics every 10 s). The periods that distrust fresh
    /// replicas are shortened in proportion, because local replicas are ready within a
    /// second or two instead of the tens of seconds an image pull and probe take. The
    /// tolerance stays upstream's: it decides *whether* to scale, not how fast.
    pub fn local_fast() -> Self {
        Self {
            sync_period: Duration::from_secs(1),
            tolerance: 0.1,
            cpu_initialization_period: Duration::from_secs(30),
            initial_readiness_delay: Duration::from_secs(5),
            downscale_stabilization_window: Duration::from_secs(60),
        }
    }
}
