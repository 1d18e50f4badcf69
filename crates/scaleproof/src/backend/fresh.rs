//! Fresh namespaces on a prepared backend: each scenario's own, prepared while the
//! scenario before it runs, deleted in the background when it is done
//! ([`crate::cluster::fresh`] does the Kubernetes part).
//!
//! kind and the local backend: the harness created the cluster, so it may create
//! namespaces in it, and it knows where each node port of the pool answers (kind
//! maps them to loopback; the simulated cluster opens a listener per node port).
//! `--backend cluster` keeps the shared namespace and its reset: the Service's
//! address there is the user's `--url`, and one node port is all they gave us.

use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Client;
use scaleproof_sim::nodeport::NodePorts;
use tokio::task::JoinHandle;

use super::{Backend, BackendKind, Target};
use crate::cluster::fresh::{self, FreshReport};
use crate::cluster::{self, Prepared};
use crate::manifests::{HpaOverrides, Manifests};

/// How long one namespace may take to be ready: a rollout, then two metrics-server
/// scrapes (kind: 15 s apart) and the pod's CPU settling under the target.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(180);
/// How often the preparation looks.
const POLL: Duration = Duration::from_millis(500);

/// Where a node port answers.
#[derive(Clone)]
enum NodePortUrl {
    /// kind: `extraPortMappings` put each pool port on the same host port.
    Loopback,
    /// The simulated cluster's listener for the port.
    Simulated(NodePorts),
}

/// Prepares and deletes the scenarios' namespaces on one backend.
#[derive(Clone)]
pub struct FreshNamespaces {
    client: Client,
    /// The workload as setup deployed it (image, environment), in the base namespace.
    base: Prepared,
    manifests_hpa: HorizontalPodAutoscaler,
    cpu_request_millicores: u64,
    pool: Vec<u16>,
    urls: NodePortUrl,
    /// What the scenario tests get besides namespace and URL.
    template: Target,
}

/// A namespace ready for its scenario.
#[derive(Debug, Clone)]
pub struct ReadyNamespace {
    pub prepared: Prepared,
    pub node_port: u16,
    pub url: String,
    pub report: FreshReport,
}

impl ReadyNamespace {
    /// The scenario's hand-over target.
    pub fn target(&self, template: &Target) -> Target {
        Target {
            namespace: self.prepared.target.namespace.clone(),
            url: self.url.clone(),
            ..template.clone()
        }
    }
}

impl FreshNamespaces {
    /// For `backend` (kind or local; `None` on a cluster, with the reason logged).
    pub async fn for_backend(backend: &Backend, manifests: &Manifests) -> Option<Self> {
        let deployed = &backend.deployed;
        let urls = match (deployed.settings.backend, &deployed.sim) {
            (BackendKind::Local, Some(sim)) => NodePortUrl::Simulated(sim.node_ports()),
            (BackendKind::Kind, _) => NodePortUrl::Loopback,
            _ => {
                tracing::info!(
                    "--backend cluster: the scenarios share namespace {} and reset it \
                     between them (a namespace per scenario needs node ports the harness \
                     can reach; on your cluster only --url is known)",
                    deployed.settings.namespace
                );
                return None;
            }
        };
        let Some(client) = deployed.client.clone() else {
            tracing::warn!("no API client after setup: the scenarios share one namespace");
            return None;
        };
        let cpu_request_millicores = match manifests.workload() {
            Ok(w) => w.cpu_request_millicores,
            Err(e) => {
                tracing::warn!("{e}: the scenarios share one namespace");
                return None;
            }
        };
        let first = deployed
            .prepared
            .node_port()
            .unwrap_or(super::plan::NODE_PORT);
        Some(FreshNamespaces {
            client,
            base: deployed.prepared.clone(),
            manifests_hpa: manifests.hpa.clone(),
            cpu_request_millicores,
            pool: fresh::node_port_turns(first),
            urls,
            template: backend.handover_target(),
        })
    }

    /// The hand-over target of the shared namespace, as the template of each
    /// scenario's.
    pub fn template(&self) -> &Target {
        &self.template
    }

    /// The namespace setup deployed into, which fresh namespaces replace.
    pub fn base(&self) -> &cluster::Target {
        &self.base.target
    }

    /// The `index`-th scenario run's namespace (`scenario`), whether or not its
    /// preparation finished: for diagnostics and deletion.
    pub fn target_for(&self, index: usize, scenario: &str) -> cluster::Target {
        cluster::Target {
            namespace: fresh::namespace_for(&self.base.target.namespace, index, scenario),
            ..self.base.target.clone()
        }
    }

    /// Starts preparing the `index`-th scenario run's namespace, `scenario` with its
    /// `hpa` overrides (as its profile has them); the task ends with it ready or
    /// with why not.
    pub fn prepare(
        &self,
        index: usize,
        scenario: &str,
        hpa: &HpaOverrides,
    ) -> JoinHandle<Result<ReadyNamespace, String>> {
        let this = self.clone();
        let namespace = fresh::namespace_for(&self.base.target.namespace, index, scenario);
        let node_port = self.pool[index % self.pool.len()];
        let hpa = hpa.apply_to(&self.manifests_hpa).map_err(|e| e.to_string());
        tokio::spawn(async move {
            let hpa = hpa?;
            let prepared = this.base.in_namespace(&namespace, &hpa, node_port);
            let url = match &this.urls {
                NodePortUrl::Loopback => format!("http://127.0.0.1:{node_port}"),
                NodePortUrl::Simulated(ports) => ports
                    .url(node_port)
                    .map_err(|e| format!("node port {node_port} on loopback: {e}"))?,
            };
            tracing::info!("preparing namespace {namespace} (node port {node_port})");
            let report = fresh::prepare(
                &this.client,
                &prepared,
                this.cpu_request_millicores,
                PREPARE_TIMEOUT,
                POLL,
            )
            .await
            .map_err(|e| format!("prepare namespace {namespace}: {e}"))?;
            tracing::info!(
                "namespace {namespace} ready in {:.1} s",
                report.took.as_secs_f64()
            );
            Ok(ReadyNamespace {
                prepared,
                node_port,
                url,
                report,
            })
        })
    }

    /// Starts deleting `target`'s namespace (a warning if the API refuses).
    pub fn delete(&self, target: &cluster::Target) -> JoinHandle<()> {
        let client = self.client.clone();
        let target = target.clone();
        tokio::spawn(async move {
            if let Err(e) = fresh::delete(&client, &target).await {
                tracing::warn!("{e}");
            }
        })
    }
}
