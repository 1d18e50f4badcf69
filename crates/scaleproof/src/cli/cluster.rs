//! `scaleproof cluster up | down | status` (`cargo xtask cluster ...`): the cluster
//! part of `stress`, by hand.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::Api;
use kube::api::DeleteParams;
use scaleproof::backend::plan::{TeardownWhen, plan};
use scaleproof::backend::settings::ClusterOptions;
use scaleproof::backend::{BackendKind, Settings, SetupLog, provision};
use scaleproof::cluster::{connect, describe_kube_error, metrics_server};
use xshell::{Shell, cmd};

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Bring the workload up and leave it running: preflight, build the image, create
    /// the kind cluster, install metrics-server, deploy k8s/, wait until the HPA has
    /// metrics. Deletes the cluster again if any step fails (unless --keep-cluster).
    Up {
        #[arg(long, value_enum, default_value = "kind")]
        backend: BackendKind,
        /// Once everything is up, write the diagnostics bundle and tear down again: a
        /// smoke test of the whole cluster path (for CI).
        #[arg(long)]
        down_after: bool,
        #[command(flatten)]
        options: ClusterOptions,
    },
    /// Delete the kind cluster (with --backend cluster: the workload's namespace).
    Down(Where),
    /// Show the workload's Deployment, HPA and the metrics API.
    Status(Where),
}

/// Which cluster `down` and `status` mean.
#[derive(Debug, Args)]
struct Where {
    #[arg(long, value_enum, default_value = "kind")]
    backend: BackendKind,
    #[arg(long, default_value = "scaleproof")]
    cluster_name: String,
    /// kubeconfig context for --backend cluster (default: the current one).
    #[arg(long)]
    context: Option<String>,
    #[arg(long, default_value = "scaleproof")]
    namespace: String,
}

impl Where {
    /// Settings for talking to the cluster (no image involved).
    fn settings(&self, root: PathBuf) -> anyhow::Result<Settings> {
        let options = ClusterOptions {
            cluster_name: self.cluster_name.clone(),
            context: self.context.clone(),
            image: Some("iris-server:unused".to_string()),
            namespace: Some(self.namespace.clone()),
            keep_cluster: true,
            image_prebuilt: false,
            dry_run: false,
            wait_timeout_s: 0,
            diagnostics_dir: None,
        };
        Ok(Settings::resolve(
            cluster_only(self.backend)?,
            options,
            root,
        )?)
    }
}

/// Runs a `cluster` subcommand from the repository root `root`.
pub fn run(args: ClusterArgs, root: PathBuf) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match args.command {
        ClusterCommand::Up {
            backend,
            down_after,
            options,
        } => {
            let settings = Settings::resolve(cluster_only(backend)?, options, root)?;
            if settings.dry_run {
                let mut plan = plan(&settings)?;
                if !down_after {
                    plan.teardown_when = TeardownWhen::OnFailure;
                }
                print!("{plan}");
                return Ok(());
            }
            runtime.block_on(async {
                let deployed = provision::setup(&settings, &mut SetupLog::default()).await?;
                let target = deployed.target();
                println!(
                    "up: Deployment {}/{} ready with image {}, HPA {} has metrics",
                    target.namespace,
                    target.deployment,
                    settings.image(),
                    target.hpa
                );
                if down_after {
                    deployed
                        .write_diagnostics_to(&settings.diagnostics_dir, None)
                        .await?;
                    provision::teardown(deployed).await?;
                    return Ok(());
                }
                if let Some(url) = deployed.base_url() {
                    println!("service: {url}  (tear down with `cargo xtask cluster down`)");
                }
                deployed.keep();
                anyhow::Ok(())
            })
        }
        ClusterCommand::Down(place) => {
            let settings = place.settings(root)?;
            match settings.backend {
                BackendKind::Kind => {
                    let sh = Shell::new()?;
                    let name = &settings.cluster_name;
                    cmd!(sh, "kind delete cluster --name {name}")
                        .run()
                        .with_context(|| format!("`kind delete cluster --name {name}` failed"))?;
                }
                // (Local was refused by `cluster_only`.)
                BackendKind::Cluster | BackendKind::Local => runtime.block_on(async {
                    let client = connect(&settings.kube_access()).await?;
                    Api::<Namespace>::all(client)
                        .delete(&settings.namespace, &DeleteParams::default())
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "delete namespace {}: {}",
                                settings.namespace,
                                describe_kube_error(&e)
                            )
                        })?;
                    println!("namespace {} is being deleted", settings.namespace);
                    anyhow::Ok(())
                })?,
            }
            Ok(())
        }
        ClusterCommand::Status(place) => {
            let settings = place.settings(root)?;
            runtime.block_on(status(&settings))
        }
    }
}

/// One line each: the Deployment, the HPA, the metrics API.
async fn status(settings: &Settings) -> anyhow::Result<()> {
    let plan = plan(settings)?;
    let target = &plan.prepared.target;
    let client = connect(&settings.kube_access()).await?;
    let ns = target.namespace.as_str();
    println!(
        "context {}",
        settings.context.as_deref().unwrap_or("(current)")
    );
    match Api::<Deployment>::namespaced(client.clone(), ns)
        .get(&target.deployment)
        .await
    {
        Ok(d) => {
            let s = d.status.unwrap_or_default();
            let image = d
                .spec
                .and_then(|s| s.template.spec)
                .and_then(|p| p.containers.first().and_then(|c| c.image.clone()))
                .unwrap_or_default();
            println!(
                "Deployment {ns}/{}: {}/{} ready, image {image}",
                target.deployment,
                s.ready_replicas.unwrap_or(0),
                s.replicas.unwrap_or(0)
            );
        }
        Err(e) => println!(
            "Deployment {ns}/{}: {}",
            target.deployment,
            describe_kube_error(&e)
        ),
    }
    match Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns)
        .get(&target.hpa)
        .await
    {
        Ok(hpa) => {
            let sample = scaleproof::cluster::observer::sample(0.0, &hpa, &[], None);
            let cpu = sample
                .cpu_utilization_pct
                .map_or("<unknown>".to_string(), |u| format!("{u}%"));
            println!(
                "HPA {ns}/{}: cpu {cpu}/{}%, replicas {} desired {}",
                target.hpa,
                sample.cpu_target_pct,
                sample
                    .current_replicas
                    .map_or("-".into(), |n| n.to_string()),
                sample
                    .desired_replicas
                    .map_or("-".into(), |n| n.to_string())
            );
            // Every metric, not only cpu: with several, the largest proposal wins.
            for m in &sample.metrics {
                let proposal = m
                    .proposal_replicas
                    .map_or(String::new(), |p| format!(" (proposes {p})"));
                println!("  metric {}{proposal}", m.describe());
            }
            for c in sample.conditions {
                println!("  {} {} {}: {}", c.type_, c.status, c.reason, c.message);
            }
        }
        Err(e) => println!("HPA {ns}/{}: {}", target.hpa, describe_kube_error(&e)),
    }
    match Api::<APIService>::all(client)
        .get(metrics_server::API_SERVICE)
        .await
    {
        Ok(service) => match metrics_server::unavailable_reason(&service) {
            None => println!("metrics API {}: Available", metrics_server::API_SERVICE),
            Some(why) => println!(
                "metrics API {}: not Available: {why}",
                metrics_server::API_SERVICE
            ),
        },
        Err(e) => println!(
            "metrics API {}: {}",
            metrics_server::API_SERVICE,
            describe_kube_error(&e)
        ),
    }
    Ok(())
}

/// The cluster commands are for kind and existing clusters; the local backend has
/// no cluster to bring up (its replicas live and die with each scenario).
fn cluster_only(backend: BackendKind) -> anyhow::Result<BackendKind> {
    if backend == BackendKind::Local {
        anyhow::bail!(
            "`cluster` works on --backend kind or --backend cluster; the local backend starts \
             its replicas per scenario (`cargo xtask stress --backend local`)"
        );
    }
    Ok(backend)
}
