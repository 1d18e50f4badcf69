//! A scenario on the local backend: fresh replicas for every scenario (the same
//! starting state each time, as the cluster backends get by resetting).

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{Failed, GateEnv, Measured, load_config, observe_for};
use crate::local::{CpuLimitMode, LocalCluster, LocalSettings};
use crate::scenario::Scenario;
use scaleproof_load as load;

pub(super) async fn run(
    env: &GateEnv,
    scenario: &Scenario,
    cancel: &CancellationToken,
) -> Result<Measured, Failed> {
    let program = env.server_bin.clone().ok_or_else(|| {
        Failed::new(format!(
            "the local backend needs the service executable in {}",
            super::vars::SERVER_BIN
        ))
    })?;
    let load_config =
        load_config(&env.config, scenario, super::BackendKind::Local).map_err(Failed::new)?;
    let backend = &env.config.backend.local;
    let mut settings = LocalSettings::new(program, env.manifests.clone());
    settings.env_overrides = backend.env_overrides();
    settings.hpa_overrides = scenario.hpa;
    if let Some(s) = backend.metric_resolution_s {
        settings.metric_resolution = std::time::Duration::from_secs_f64(s.max(0.1));
    }
    if let Some(s) = backend.sync_period_s {
        settings.controller.sync_period = std::time::Duration::from_secs_f64(s.max(0.1));
    }
    let log_dir = env.out_dir.join("logs").join(&scenario.name);
    match std::fs::create_dir_all(&log_dir) {
        Ok(()) => settings.log_dir = Some(log_dir),
        Err(e) => eprintln!(
            "warning: cannot create {} ({e}); replica logs are discarded",
            log_dir.display()
        ),
    }

    let cluster = LocalCluster::start(settings).await.map_err(Failed::new)?;
    if let CpuLimitMode::Uncapped { reason } = cluster.cpu_limit() {
        eprintln!(
            "WARNING: replicas run WITHOUT a CPU limit ({reason}); figures do not describe capped pods"
        );
    }
    let zero = Instant::now();
    let result = load::run(&load_config, &cluster.targets(), cancel).await;
    observe_for(scenario.observe_after_s, cancel).await;
    let run = cluster.stop(zero).await;
    match result {
        Ok(load) => Ok(Measured {
            load,
            timeline: run.timeline,
        }),
        Err(e) => Err(Failed {
            error: format!("load engine: {e}"),
            timeline: run.timeline,
        }),
    }
}
