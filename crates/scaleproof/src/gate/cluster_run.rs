//! A scenario on kind or an existing cluster: reset the workload to one ready pod and
//! a fresh HPA (with the scenario's overrides), watch the HPA and PodMetrics while
//! the load runs, and hand back the same timeline the local backend produces.

use std::time::{Duration, Instant};

use kube::Client;
use kube::config::KubeConfigOptions;
use tokio_util::sync::CancellationToken;

use super::{Failed, GateEnv, Measured, load_config, observe_for};
use crate::cluster::observer::{self, ObserverConfig};
use crate::cluster::reset::{self, ResetTimings};
use crate::cluster::{Target, describe_kube_error};
use crate::scenario::Scenario;
use scaleproof_load::{self as load, Targets};

/// How often the observer samples the HPA and PodMetrics.
const OBSERVE_EVERY: Duration = Duration::from_secs(1);

pub(super) async fn run(
    env: &GateEnv,
    scenario: &Scenario,
    cancel: &CancellationToken,
) -> Result<Measured, Failed> {
    let url = env
        .url
        .clone()
        .ok_or_else(|| Failed::new(format!("no load target: {} is not set", super::vars::URL)))?;
    let targets = Targets::parse([url.as_str()])
        .map_err(|e| Failed::new(format!("{}={url}: {e}", super::vars::URL)))?;
    let load_config = load_config(&env.config, scenario, env.backend).map_err(Failed::new)?;
    let client = connect(env.kube_context.as_deref())
        .await
        .map_err(Failed::new)?;
    let namespace = &env.namespace;
    let target = Target::from_manifests(&env.manifests, namespace).map_err(Failed::new)?;
    let mut base_hpa = env.manifests.hpa.clone();
    base_hpa.metadata.namespace = Some(namespace.clone());

    eprintln!("resetting {namespace}: HPA deleted, Deployment at 1 ready pod, HPA re-applied");
    reset::reset(
        &client,
        &target,
        &base_hpa,
        &scenario.hpa,
        ResetTimings::default(),
    )
    .await
    .map_err(|e| Failed::new(format!("reset before the scenario: {e}")))?;

    let zero = Instant::now();
    let stop_observing = CancellationToken::new();
    let observing = tokio::spawn(observer::observe(
        client.clone(),
        ObserverConfig {
            target,
            period: OBSERVE_EVERY,
            started: tokio::time::Instant::from_std(zero),
        },
        stop_observing.clone(),
    ));
    let result = load::run(&load_config, &targets, cancel).await;
    observe_for(scenario.observe_after_s, cancel).await;
    stop_observing.cancel();
    let observation = observing.await.unwrap_or_default();
    for warning in &observation.warnings {
        eprintln!("observer: {warning}");
    }
    match result {
        Ok(load) => Ok(Measured {
            load,
            timeline: observation.timeline,
        }),
        Err(e) => Err(Failed {
            error: format!("load engine: {e}"),
            timeline: observation.timeline,
        }),
    }
}

/// A client for the kubeconfig context xtask named (the current one when `None`).
async fn connect(context: Option<&str>) -> Result<Client, String> {
    let what = context.unwrap_or("the current context");
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_kubeconfig(&options)
        .await
        .map_err(|e| format!("kubeconfig has no usable {what}: {e}"))?;
    Client::try_from(config).map_err(|e| {
        format!(
            "cannot build a client for {what}: {}",
            describe_kube_error(&e)
        )
    })
}
