//! Fresh namespaces on a prepared backend: each scenario's own, prepared while the
//! scenario before it runs, deleted in the background when it is done
//! ([`crate::cluster::fresh`] does the Kubernetes part).
//!
//! kind and the local backend: the harness created the cluster, so it may create
//! namespaces in it, and it knows where each node port of the pool answers (kind
//! maps them to loopback; the simulated cluster opens a listener per node port).
//! `--backend cluster` keeps the shared namespace and its reset: the Service's
//! address there is the user's `--url`, and one node port is all they gave us.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Client;
use scaleproof_sim::nodeport::NodePorts;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{Backend, BackendKind, Target};
use crate::cluster::capacity::{self, NodeCpu};
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
    ports: Arc<PortPool>,
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
            ports: Arc::new(PortPool::new(
                fresh::node_port_turns(first),
                &deployed.prepared.target.namespace,
            )),
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
        let hpa = hpa.apply_to(&self.manifests_hpa).map_err(|e| e.to_string());
        tokio::spawn(async move {
            let hpa = hpa?;
            let node_port = this
                .ports
                .take(&namespace, PREPARE_TIMEOUT)
                .await
                .ok_or_else(|| {
                    format!(
                        "no node port of the pool came free within {PREPARE_TIMEOUT:?} \
                         for namespace {namespace}"
                    )
                })?;
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

    /// Starts deleting `target`'s namespace (a warning if the API refuses); its
    /// node port goes back to the pool once the API accepted the deletion (the next
    /// holder's apply waits out the Service's last moments, see
    /// [`fresh::prepare`]).
    pub fn delete(&self, target: &cluster::Target) -> JoinHandle<()> {
        let client = self.client.clone();
        let target = target.clone();
        let ports = Arc::clone(&self.ports);
        tokio::spawn(async move {
            match fresh::delete(&client, &target).await {
                Ok(()) => ports.give_back(&target.namespace),
                Err(e) => tracing::warn!("{e}"),
            }
        })
    }

    /// The node's CPU as lanes are planned against: kind's node from the API
    /// (allocatable, less what its pods requested); the simulated node is this
    /// machine, whose CPUs its pods share with the simulated control plane and the
    /// load engine, as on kind the load engine shares the runner unbooked.
    pub async fn node_cpu(&self) -> NodeCpu {
        let requested = capacity::requested_millicores(&self.client).await;
        let (allocatable, source) = match &self.urls {
            NodePortUrl::Loopback => match capacity::allocatable_millicores(&self.client).await {
                Ok((m, nodes)) => (m, format!("{nodes} node(s) from the API")),
                Err(e) => (0, format!("unknown: {e}")),
            },
            NodePortUrl::Simulated(_) => {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                (
                    cpus as u64 * 1000,
                    format!("the simulated node is this machine: {cpus} CPUs"),
                )
            }
        };
        let (reserved_m, source) = match requested {
            Ok(m) => (m, source),
            Err(e) => (0, format!("{source}; pods' requests unknown: {e}")),
        };
        NodeCpu {
            allocatable_m: allocatable,
            reserved_m,
            source,
        }
    }
}

/// The node ports of the pool and which namespace holds each. A namespace takes
/// one when its preparation starts and gives it back when its deletion was
/// accepted; with every port held, a preparation waits for one.
struct PortPool {
    state: Mutex<PortState>,
    freed: Notify,
}

#[derive(Default)]
struct PortState {
    free: VecDeque<u16>,
    held: BTreeMap<String, u16>,
}

impl PortPool {
    /// `turns` in the order they are taken; the last is setup's namespace `base`'s
    /// until it is deleted (see [`fresh::node_port_turns`]).
    fn new(turns: Vec<u16>, base: &str) -> Self {
        let mut free: VecDeque<u16> = turns.into();
        let mut held = BTreeMap::new();
        if let Some(last) = free.pop_back() {
            held.insert(base.to_string(), last);
        }
        PortPool {
            state: Mutex::new(PortState { free, held }),
            freed: Notify::new(),
        }
    }

    /// A free port for `namespace`, waiting at most `within` for one.
    async fn take(&self, namespace: &str, within: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // Registered before looking, so a port given back in between wakes us.
            let freed = self.freed.notified();
            if let Some(port) = self.try_take(namespace) {
                return Some(port);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return None;
            }
        }
    }

    fn try_take(&self, namespace: &str) -> Option<u16> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&port) = state.held.get(namespace) {
            return Some(port);
        }
        let port = state.free.pop_front()?;
        state.held.insert(namespace.to_string(), port);
        Some(port)
    }

    /// `namespace`'s port, if it held one, back to the pool.
    fn give_back(&self, namespace: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(port) = state.held.remove(namespace) {
            state.free.push_back(port);
            drop(state);
            self.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ports_go_round_and_setups_comes_back_when_its_namespace_goes() {
        let pool = PortPool::new(vec![30081, 30082, 30083, 30080], "base");
        let short = Duration::from_millis(20);
        assert_eq!(pool.take("a", short).await, Some(30081));
        assert_eq!(pool.take("b", short).await, Some(30082));
        assert_eq!(
            pool.take("a", short).await,
            Some(30081),
            "a namespace keeps its port"
        );
        assert_eq!(pool.take("c", short).await, Some(30083));
        assert_eq!(pool.take("d", short).await, None, "all four held");
        pool.give_back("base");
        assert_eq!(pool.take("d", short).await, Some(30080));
        pool.give_back("unknown");
        assert_eq!(pool.take("e", short).await, None);
    }

    #[tokio::test]
    async fn a_waiting_preparation_gets_the_port_given_back() {
        let pool = Arc::new(PortPool::new(vec![30081, 30080], "base"));
        assert_eq!(pool.take("a", Duration::ZERO).await, Some(30081));
        let waiting = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.take("b", Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        pool.give_back("a");
        assert_eq!(waiting.await.ok().flatten(), Some(30081));
    }
}
