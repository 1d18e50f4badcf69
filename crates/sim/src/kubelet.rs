//! The kubelet of the simulated node: it runs the pods the API holds as real local
//! processes ([`Replica`]) and reports their status back.
//!
//! What it does as a kubelet does: start a pod's container a little after the pod
//! appears (the preset's start delay), probe readiness (`Ready` follows the probe),
//! restart a container that exits (with `CrashLoopBackOff` and its back-off, the last
//! exit in `lastState`, a log file per run), and stop a deleted pod in the kubelet's
//! order: the pod leaves the Service's endpoints first (it is terminating), then the
//! `preStop` sleep runs, then SIGTERM, and SIGKILL when the rest of the grace period
//! is over (`pkg/kubelet/kuberuntime/kuberuntime_container.go`, `killContainer`: the
//! grace period is shortened by the preStop hook's time, to no less than 2 s). Once
//! the process is gone, the pod object is removed.
//!
//! It also keeps each running pod's cumulative CPU time (the cgroup's, as cAdvisor
//! reads it), which the metrics scraper turns into PodMetrics.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::api::LogFiles;
use super::api::resource::{FieldSelector, Resource, Selector};
use super::api::store::{self, Key, Store, rfc3339};
use super::cgroup::CgroupDriver;
use super::events::{self, EventType};
use super::nodeport::NodePorts;
use super::phases::{Draws, PhaseLog, stream};
use super::podnet::{PodNet, PodNetwork};
use super::probe::{ProbeSpec, Prober};
use super::qos::QosClass;
use super::replica::{Replica, ReplicaTemplate};
use super::sweep::Registry;
use super::timing::Timing;
use scaleproof_hpa::parse_milli as parse_cpu_millicores;

/// How often the kubelet looks at its pods.
const TICK: Duration = Duration::from_millis(100);
/// The kubelet's container restart back-off: 10 s, doubling, at most 5 min.
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// The least time between SIGTERM and SIGKILL (`minimumGracePeriodInSeconds`).
const MIN_GRACE: Duration = Duration::from_secs(2);
/// The component name on the kubelet's events, and the node's name.
const COMPONENT: &str = "kubelet";
pub const NODE: &str = "scaleproof-local";

/// One running pod's CPU and memory as the kubelet's summary API would report it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodStats {
    /// Cumulative CPU time of the pod's cgroup (or process, uncapped).
    pub cpu: Duration,
    /// Memory in use (bytes), when it could be read.
    pub memory: Option<u64>,
    /// When it was read.
    pub at: SystemTime,
    /// When the current container started (a restart resets the counter).
    pub container_started: SystemTime,
}

/// The kubelet's view of its running pods, for the metrics scraper.
pub type Stats = Arc<Mutex<BTreeMap<Key, (String, PodStats)>>>;

/// How the kubelet stops a deleted pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TerminationOrder {
    /// As a cluster does: the pod leaves the Service's endpoints, its preStop hook
    /// runs, then SIGTERM, and SIGKILL once the grace period is spent.
    #[default]
    Graceful,
    /// Broken on purpose, for tests that must see a scale-down fail requests: SIGKILL
    /// at once, while the endpoint stays published for `endpoint_lag` (kube-proxy
    /// catching up with a pod that had no preStop pause to cover it).
    Abrupt { endpoint_lag: Duration },
}

/// What the kubelet needs to start containers.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// What each container runs, by the container's name (the image's stand-in).
    pub containers: std::collections::BTreeMap<String, super::LocalProgram>,
    pub cgroups: CgroupDriver,
    /// Where container logs go: `<pod>.<container>.<run>.log`.
    pub log_dir: PathBuf,
    pub timing: Timing,
    /// This run's record of the processes it started, for a later run's sweep.
    pub registry: Arc<Registry>,
    pub termination: TerminationOrder,
    /// The run's seed: housekeeping waits and pod start delays are drawn from it.
    pub seed: u64,
    /// Where each container's housekeeping times are recorded.
    pub phases: Arc<PhaseLog>,
    /// A network namespace per pod, or loopback.
    pub network: PodNetwork,
}

pub struct Kubelet {
    config: KubeletConfig,
    store: Arc<Store>,
    logs: LogFiles,
    node_ports: NodePorts,
    stats: Stats,
    pods: BTreeMap<Key, PodRuntime>,
    /// cAdvisor's per-container housekeeping state.
    housekeeping: BTreeMap<Key, HousekeepingState>,
    housekeeping_draws: Draws,
    start_draws: Draws,
}

/// One container's housekeeping: its base interval and when it next samples.
#[derive(Debug, Clone, Copy)]
struct HousekeepingState {
    container_started: SystemTime,
    base: Duration,
    next_at: SystemTime,
}

/// A pod on this node, and the kubelet's bookkeeping about it.
struct PodRuntime {
    key: Key,
    object: Value,
    /// `status.qosClass`, from the spec's requests and limits.
    qos: &'static str,
    created: SystemTime,
    start_at: Instant,
    container: String,
    template: Result<(ReplicaTemplate, ProbeSpec), String>,
    run: Option<Run>,
    /// The pod's network namespace (its sandbox), from its first start until the pod
    /// is gone; after `run`, so the process is stopped before its network goes.
    net: Option<PodNet>,
    runs: u32,
    restart_count: u32,
    last_exit: Option<Exit>,
    backoff: Duration,
    restart_at: Option<Instant>,
    ready: bool,
    ready_changed: SystemTime,
    terminating: Option<Terminating>,
    waiting: Option<(String, String)>,
}

struct Run {
    replica: Replica,
    prober: Prober,
    started: SystemTime,
    /// The prober's failures already turned into `Unhealthy` events.
    probe_failures_reported: u64,
}

#[derive(Debug, Clone)]
struct Exit {
    code: i32,
    reason: &'static str,
    started: SystemTime,
    finished: SystemTime,
    container_id: String,
}

struct Terminating {
    /// [`TerminationOrder::Abrupt`]: the endpoint stays published until then.
    endpoint_until: Option<Instant>,
    prestop_until: Instant,
    /// Set once SIGTERM went out: when SIGKILL follows.
    kill_at: Option<Instant>,
    grace: Duration,
}

impl Kubelet {
    pub fn new(
        config: KubeletConfig,
        store: Arc<Store>,
        logs: LogFiles,
        node_ports: NodePorts,
        stats: Stats,
    ) -> Self {
        Kubelet {
            housekeeping_draws: Draws::new(config.seed, stream::HOUSEKEEPING),
            start_draws: Draws::new(config.seed, stream::POD_START),
            config,
            store,
            logs,
            node_ports,
            stats,
            pods: BTreeMap::new(),
            housekeeping: BTreeMap::new(),
        }
    }

    /// Runs until `cancel`, then stops every pod (SIGTERM, a short grace, SIGKILL).
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => self.sync(),
            }
        }
        self.shutdown().await;
    }

    fn sync(&mut self) {
        let (pods, _) = self.store.list(
            Resource::Pod,
            None,
            &Selector::default(),
            &FieldSelector::default(),
        );
        let mut seen = BTreeSet::new();
        for pod in pods {
            let key = Key::new(
                Resource::Pod,
                pod["metadata"]["namespace"].as_str().unwrap_or(""),
                pod["metadata"]["name"].as_str().unwrap_or(""),
            );
            seen.insert(key.clone());
            match self.pods.get_mut(&key) {
                Some(runtime) => runtime.object = pod,
                None => {
                    let delay = self.config.timing.pod_start.at(self.start_draws.unit());
                    let runtime = PodRuntime::new(key.clone(), pod, &self.config, delay);
                    self.pods.insert(key, runtime);
                }
            }
        }
        // Removed behind the kubelet's back (a forced delete): stop it now.
        self.pods.retain(|key, _| seen.contains(key));

        let now = Instant::now();
        let mut finished = Vec::new();
        for runtime in self.pods.values_mut() {
            if runtime.advance(now, &self.config, &self.store, &self.logs) {
                finished.push(runtime.key.clone());
            }
        }
        for key in finished {
            self.pods.remove(&key);
            self.store.delete(&key);
        }
        for runtime in self.pods.values() {
            let mut status = runtime.status();
            self.store.update(&runtime.key, |p| {
                // Conditions others own survive the kubelet's write, as a status
                // patch leaves them: the API server's DisruptionTarget on eviction.
                let kept: Vec<Value> = p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["type"] == "DisruptionTarget")
                    .cloned()
                    .collect();
                if let Some(conditions) = status["conditions"].as_array_mut() {
                    conditions.extend(kept);
                }
                p["status"] = status;
            });
        }
        self.publish_endpoints();
        self.publish_stats();
    }

    /// The endpoints of the NodePort Services, by node port: their pods that are
    /// ready and not terminating (the EndpointSlice controller marks a terminating pod
    /// not ready at once, so it leaves before its preStop hook and SIGTERM). Each
    /// Service's pods come from its own namespace, on its own node port.
    fn publish_endpoints(&self) {
        let now = Instant::now();
        let (services, _) = self.store.list(
            Resource::Service,
            None,
            &Selector::default(),
            &FieldSelector::default(),
        );
        let mut by_port: BTreeMap<u16, (String, Vec<SocketAddr>)> = BTreeMap::new();
        for service in services
            .iter()
            .filter(|s| s["spec"]["type"] == json!("NodePort"))
        {
            let selector: BTreeMap<String, String> = service["spec"]["selector"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect();
            let namespace = service["metadata"]["namespace"].as_str().unwrap_or("");
            let mut ready: Vec<SocketAddr> = Vec::new();
            for runtime in self.pods.values() {
                let labels = store::labels(&runtime.object);
                let selected = !selector.is_empty()
                    && runtime.key.namespace == namespace
                    && selector.iter().all(|(k, v)| labels.get(k) == Some(v));
                if selected
                    && runtime.serves_traffic(now)
                    && let Some(run) = &runtime.run
                {
                    ready.push(run.replica.addr);
                }
            }
            let node_ports = service["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["nodePort"].as_u64())
                .filter_map(|p| u16::try_from(p).ok());
            let name = service["metadata"]["name"].as_str().unwrap_or("");
            for node_port in node_ports {
                // One Service per node port: the API server's allocation sees to it.
                by_port.insert(node_port, (format!("{namespace}/{name}"), ready.clone()));
            }
        }
        self.node_ports.publish(&by_port);
    }

    /// The pods' CPU and memory for the metrics scraper, each sampled on its
    /// container's own housekeeping schedule (see [`super::timing::Housekeeping`]:
    /// at the container's start, then every 10-20 s while it is busy), so a scrape
    /// sees them as of the last sample, as on a real node. Without housekeeping
    /// (`fast`), every tick samples.
    fn publish_stats(&mut self) {
        let now = SystemTime::now();
        let plan = self.config.timing.housekeeping;
        let previous = self
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut stats: BTreeMap<Key, (String, PodStats)> = BTreeMap::new();
        for runtime in self.pods.values() {
            let Some(run) = runtime.run.as_ref() else {
                continue;
            };
            let key = &runtime.key;
            let kept = previous
                .get(key)
                .filter(|(_, kept)| kept.container_started == run.started);
            let state = self
                .housekeeping
                .get(key)
                .filter(|s| s.container_started == run.started);
            let due = plan.is_fresh() || kept.is_none() || state.is_none_or(|s| now >= s.next_at);
            if !due && let Some(kept) = kept {
                stats.insert(key.clone(), kept.clone());
                continue;
            }
            let Some(cpu) = run.replica.cpu_time() else {
                continue;
            };
            let sample = PodStats {
                cpu,
                memory: run.replica.memory_bytes(),
                at: now,
                container_started: run.started,
            };
            if !plan.is_fresh() {
                let unchanged =
                    kept.is_some_and(|(_, k)| k.cpu == sample.cpu && k.memory == sample.memory);
                let base = state.map_or(plan.interval, |s| plan.next_base(s.base, unchanged));
                let wait = plan.wait(base, self.housekeeping_draws.unit());
                self.housekeeping.insert(
                    key.clone(),
                    HousekeepingState {
                        container_started: run.started,
                        base,
                        next_at: now + wait,
                    },
                );
                self.config
                    .phases
                    .housekept(&format!("{}/{}", key.namespace, key.name), now);
            }
            stats.insert(key.clone(), (runtime.container.clone(), sample));
        }
        let pods = &self.pods;
        self.housekeeping.retain(|key, _| pods.contains_key(key));
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner) = stats;
    }

    async fn shutdown(&mut self) {
        for runtime in self.pods.values_mut() {
            if let Some(run) = &mut runtime.run {
                run.replica.terminate();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && self.pods.values_mut().any(|r| {
                r.run
                    .as_mut()
                    .is_some_and(|run| run.replica.exit_status().is_none())
            })
        {
            tokio::time::sleep(TICK).await;
        }
        // Dropping a replica kills what is left and removes its cgroup.
        self.pods.clear();
        self.node_ports.publish(&BTreeMap::new());
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl PodRuntime {
    fn new(key: Key, object: Value, config: &KubeletConfig, start_delay: Duration) -> Self {
        let template = template_for(&object, config);
        let qos = serde_json::from_value::<Pod>(object.clone())
            .map_or("Burstable", |pod| QosClass::of(&pod).as_str());
        let container = object["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or("main")
            .to_string();
        let now = SystemTime::now();
        PodRuntime {
            key,
            object,
            qos,
            created: now,
            start_at: Instant::now() + start_delay,
            container,
            template,
            run: None,
            net: None,
            runs: 0,
            restart_count: 0,
            last_exit: None,
            backoff: BACKOFF_START,
            restart_at: None,
            ready: false,
            ready_changed: now,
            terminating: None,
            waiting: Some(("ContainerCreating".into(), String::new())),
        }
    }

    /// One step of the pod's life; `true` when it is over and the object can go.
    fn advance(
        &mut self,
        now: Instant,
        config: &KubeletConfig,
        store: &Store,
        logs: &LogFiles,
    ) -> bool {
        let deleting = !self.object["metadata"]["deletionTimestamp"].is_null();
        if deleting && self.terminating.is_none() {
            self.begin_termination(now, store, config.termination);
        }
        if let Some(terminating) = &mut self.terminating {
            let Some(run) = &mut self.run else {
                return true; // nothing runs: nothing to stop
            };
            if run.replica.exit_status().is_some() {
                return terminating.endpoint_until.is_none_or(|until| now >= until);
            }
            match terminating.kill_at {
                None if now >= terminating.prestop_until => {
                    run.replica.terminate();
                    let spent = now.saturating_duration_since(terminating.prestop_until);
                    let rest = terminating.grace.saturating_sub(spent).max(MIN_GRACE);
                    terminating.kill_at = Some(now + rest);
                }
                Some(kill_at) if now >= kill_at => run.replica.kill(),
                _ => {}
            }
            return false;
        }
        match &mut self.run {
            None => {
                let due = now >= self.start_at && self.restart_at.is_none_or(|at| now >= at);
                if due {
                    self.start(config, store, logs);
                }
            }
            Some(run) => {
                if let Some(status) = run.replica.exit_status() {
                    let code = exit_code(status);
                    // The kernel's OOM killer sends SIGKILL; only the cgroup's counter
                    // tells it from any other SIGKILL, as the runtime's OOM event does
                    // for the real kubelet (reason OOMKilled, exit code 137).
                    let oom_killed = run.replica.oom_kills().is_some_and(|n| n > 0);
                    let exit = Exit {
                        code,
                        reason: match (oom_killed, code) {
                            (true, _) => "OOMKilled",
                            (false, 0) => "Completed",
                            (false, _) => "Error",
                        },
                        started: run.started,
                        finished: SystemTime::now(),
                        container_id: format!("local://{}", run.replica.pid()),
                    };
                    self.last_exit = Some(exit);
                    self.run = None;
                    self.restart_count += 1;
                    self.set_ready(false);
                    self.restart_at = Some(now + self.backoff);
                    let pod = self.object["metadata"]["name"].as_str().unwrap_or("");
                    let message = format!(
                        "back-off {} restarting failed container={} pod={pod}_{}({})",
                        go_duration(self.backoff),
                        self.container,
                        self.key.namespace,
                        self.object["metadata"]["uid"].as_str().unwrap_or("")
                    );
                    self.waiting = Some(("CrashLoopBackOff".into(), message));
                    events::record(
                        store,
                        &self.object,
                        EventType::Warning,
                        "BackOff",
                        &format!(
                            "Back-off restarting failed container {} in pod {pod}_{}({})",
                            self.container,
                            self.key.namespace,
                            self.object["metadata"]["uid"].as_str().unwrap_or("")
                        ),
                        COMPONENT,
                    );
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                } else {
                    // Every failed probe is a Warning event with the probe's output, as
                    // the kubelet records it (`pkg/kubelet/prober/prober.go`), merged
                    // into one event with a count when the output repeats.
                    let failed = run.prober.failed();
                    if failed.count > run.probe_failures_reported {
                        run.probe_failures_reported = failed.count;
                        events::record(
                            store,
                            &self.object,
                            EventType::Warning,
                            "Unhealthy",
                            &format!("Readiness probe failed: {}", failed.output),
                            COMPONENT,
                        );
                    }
                    let ready = run.prober.is_ready();
                    if ready != self.ready {
                        self.set_ready(ready);
                    }
                }
            }
        }
        false
    }

    fn set_ready(&mut self, ready: bool) {
        if ready != self.ready {
            self.ready = ready;
            self.ready_changed = SystemTime::now();
        }
    }

    fn start(&mut self, config: &KubeletConfig, store: &Store, logs: &LogFiles) {
        let (template, probe) = match &self.template {
            Ok(t) => t.clone(),
            Err(why) => {
                self.waiting = Some(("CreateContainerConfigError".into(), why.clone()));
                self.restart_at = Some(Instant::now() + self.backoff);
                events::record(
                    store,
                    &self.object,
                    EventType::Warning,
                    "Failed",
                    &format!("Error: {why}"),
                    COMPONENT,
                );
                return;
            }
        };
        // The sandbox first: a namespace with its address, kept across restarts.
        if self.net.is_none()
            && let PodNetwork::Namespaces(subnet) = &config.network
        {
            match subnet.create() {
                Ok(net) => self.net = Some(net),
                Err(e) => {
                    self.waiting = Some(("ContainerCreating".into(), e.to_string()));
                    self.restart_at = Some(Instant::now() + self.backoff);
                    events::record(
                        store,
                        &self.object,
                        EventType::Warning,
                        "FailedCreatePodSandBox",
                        &format!("Failed to create pod sandbox: {e}"),
                        COMPONENT,
                    );
                    return;
                }
            }
        }
        let run_name = format!("{}.{}.{}", self.key.name, self.container, self.runs);
        match Replica::spawn(&template, &run_name, &config.cgroups, self.net.as_ref()) {
            Ok(replica) => {
                config.registry.add(replica.pid());
                let file = config.log_dir.join(format!("{run_name}.log"));
                logs.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry((
                        self.key.namespace.clone(),
                        self.key.name.clone(),
                        self.container.clone(),
                    ))
                    .or_default()
                    .push(file);
                let prober = Prober::start(replica.addr, probe);
                self.runs += 1;
                self.waiting = None;
                if self.runs == 1 {
                    events::record(
                        store,
                        &self.object,
                        EventType::Normal,
                        "Pulled",
                        &format!(
                            "Container image {:?} already present on machine",
                            self.object["spec"]["containers"][0]["image"]
                                .as_str()
                                .unwrap_or("")
                        ),
                        COMPONENT,
                    );
                }
                events::record(
                    store,
                    &self.object,
                    EventType::Normal,
                    "Created",
                    &format!("Created container: {}", self.container),
                    COMPONENT,
                );
                events::record(
                    store,
                    &self.object,
                    EventType::Normal,
                    "Started",
                    &format!("Started container {}", self.container),
                    COMPONENT,
                );
                self.run = Some(Run {
                    replica,
                    prober,
                    started: SystemTime::now(),
                    probe_failures_reported: 0,
                });
            }
            Err(e) => {
                let message = e.to_string();
                events::record(
                    store,
                    &self.object,
                    EventType::Warning,
                    "Failed",
                    &format!("Error: {message}"),
                    COMPONENT,
                );
                self.waiting = Some(("CreateContainerError".into(), message));
                self.restart_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    fn begin_termination(&mut self, now: Instant, store: &Store, order: TerminationOrder) {
        let grace = Duration::from_secs(
            self.object["metadata"]["deletionGracePeriodSeconds"]
                .as_u64()
                .or_else(|| self.object["spec"]["terminationGracePeriodSeconds"].as_u64())
                .unwrap_or(30),
        );
        let prestop =
            self.object["spec"]["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
                .as_u64()
                .map(Duration::from_secs)
                .unwrap_or_default()
                .min(grace);
        let was_serving = self.ready;
        self.set_ready(false);
        if self.run.is_some() {
            events::record(
                store,
                &self.object,
                EventType::Normal,
                "Killing",
                &format!("Stopping container {}", self.container),
                COMPONENT,
            );
        }
        self.terminating = Some(Terminating {
            endpoint_until: None,
            prestop_until: now + prestop,
            kill_at: None,
            grace: grace.saturating_sub(prestop),
        });
        if let TerminationOrder::Abrupt { endpoint_lag } = order {
            if let Some(run) = &mut self.run {
                run.replica.kill();
            }
            self.terminating = Some(Terminating {
                endpoint_until: was_serving.then_some(now + endpoint_lag),
                prestop_until: now,
                kill_at: Some(now),
                grace: Duration::ZERO,
            });
        }
    }

    /// Whether the pod's address is in the Service's endpoints: ready and not
    /// terminating (or, with [`TerminationOrder::Abrupt`], not yet caught up with).
    fn serves_traffic(&self, now: Instant) -> bool {
        match &self.terminating {
            None => self.ready,
            Some(t) => t.endpoint_until.is_some_and(|until| now < until),
        }
    }

    /// The pod's `status`, in the kubelet's shape (conditions in its order,
    /// `lastProbeTime` null, `lastState` `{}` until a container exited).
    fn status(&self) -> Value {
        let created = rfc3339(self.created);
        let started = self.run.as_ref().map(|r| r.started);
        let ever_started = self.runs > 0;
        let ready = self.ready && self.terminating.is_none();
        let condition = |type_: &str, ok: bool, at: &str| {
            let mut c = json!({"type": type_, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": at});
            if !ok && (type_ == "Ready" || type_ == "ContainersReady") {
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!(format!(
                    "containers with unready status: [{}]",
                    self.container
                ));
            }
            c
        };
        let ready_at = rfc3339(self.ready_changed);
        let state = match (&self.run, &self.waiting) {
            (Some(run), _) => json!({"running": {"startedAt": rfc3339(run.started)}}),
            (None, Some((reason, message))) if message.is_empty() => {
                json!({"waiting": {"reason": reason}})
            }
            (None, Some((reason, message))) => {
                json!({"waiting": {"reason": reason, "message": message}})
            }
            (None, None) => json!({"waiting": {"reason": "ContainerCreating"}}),
        };
        let last_state = match &self.last_exit {
            Some(exit) => json!({"terminated": {
                "exitCode": exit.code, "reason": exit.reason,
                "startedAt": rfc3339(exit.started), "finishedAt": rfc3339(exit.finished),
                "containerID": exit.container_id,
            }}),
            None => json!({}),
        };
        let mut container = json!({
            "name": self.container,
            "state": state,
            "lastState": last_state,
            "ready": ready,
            "restartCount": self.restart_count,
            "image": self.object["spec"]["containers"][0]["image"],
            "imageID": "",
            "started": started.is_some(),
        });
        if let Some(run) = &self.run {
            container["containerID"] = json!(format!("local://{}", run.replica.pid()));
        }
        let pod_ip = self
            .net
            .as_ref()
            .map_or_else(|| "127.0.0.1".to_string(), |n| n.ip.to_string());
        json!({
            "phase": if ever_started { "Running" } else { "Pending" },
            "conditions": [
                condition("PodReadyToStartContainers", ever_started, &created),
                condition("Initialized", true, &created),
                condition("Ready", ready, &ready_at),
                condition("ContainersReady", ready, &ready_at),
                condition("PodScheduled", true, &created),
            ],
            "hostIP": "127.0.0.1",
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": created,
            "qosClass": self.qos,
            "containerStatuses": [container],
        })
    }
}

/// How to run the pod's (first) container here: its args and env, its CPU limit as
/// a cgroup quota, its readiness probe.
fn template_for(
    pod: &Value,
    config: &KubeletConfig,
) -> Result<(ReplicaTemplate, ProbeSpec), String> {
    let typed: Pod =
        serde_json::from_value(pod.clone()).map_err(|e| format!("unreadable pod: {e}"))?;
    let container = typed
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .ok_or("the pod has no container")?;
    let resources = container.resources.as_ref();
    let limits = resources.and_then(|r| r.limits.as_ref());
    let cpu_of = |quantities: Option<&BTreeMap<String, Quantity>>| {
        quantities
            .and_then(|q| q.get("cpu"))
            .and_then(|q| parse_cpu_millicores(&q.0))
            .unwrap_or(0)
    };
    let limit = cpu_of(limits);
    // Defaulted from the limit by the API server when the manifest has none.
    let request = cpu_of(resources.and_then(|r| r.requests.as_ref()));
    let memory_limit = limits
        .and_then(|l| l.get("memory"))
        .map(|q| {
            scaleproof_hpa::parse_milli(&q.0)
                .map(|milli| milli / 1000)
                .ok_or_else(|| format!("unreadable memory limit {:?}", q.0))
        })
        .transpose()?;
    let env = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
        .collect();
    let probe = container.readiness_probe.as_ref();
    let path = probe
        .and_then(|p| p.http_get.as_ref())
        .and_then(|h| h.path.clone())
        .unwrap_or_else(|| "/".into());
    let seconds =
        |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
    let spec = ProbeSpec {
        path: path.clone(),
        period: seconds(probe.and_then(|p| p.period_seconds), 10).max(Duration::from_secs(1)),
        timeout: seconds(probe.and_then(|p| p.timeout_seconds), 1).max(Duration::from_secs(1)),
        failure_threshold: probe.and_then(|p| p.failure_threshold).unwrap_or(3).max(1) as u32,
        initial_delay: seconds(probe.and_then(|p| p.initial_delay_seconds), 0),
        on_period: config.timing.probe_on_period,
    };
    let container_port = container
        .ports
        .iter()
        .flatten()
        .next()
        .and_then(|p| u16::try_from(p.container_port).ok())
        .ok_or("the container declares no containerPort to serve on")?;
    // The image's stand-in: a node would run the image's entrypoint (or the
    // manifest's command, a path inside the image) with the manifest's args.
    let program = config.containers.get(&container.name).ok_or_else(|| {
        super::program::missing_entry_help(
            &container.name,
            container.image.as_deref().unwrap_or("(none)"),
        )
    })?;
    // The kubelet ranks the container for the OOM killer by its QoS class; the node's
    // memory is this machine's.
    let oom_score_adj = super::qos::node_memory_bytes()
        .map(|capacity| super::qos::oom_score_adj(&typed, container, capacity));
    let template = ReplicaTemplate {
        oom_score_adj,
        program: program.clone(),
        args: container.args.clone().unwrap_or_default(),
        container_port,
        env,
        cpu_limit_millicores: limit,
        cpu_request_millicores: request,
        memory_limit_bytes: memory_limit,
        readiness_path: path,
        log_dir: Some(config.log_dir.clone()),
    };
    Ok((template, spec))
}

/// The container's exit code as the runtime reports it: the process's own, or 128 +
/// the signal that killed it (137 for SIGKILL, 143 for SIGTERM).
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(137)
}

/// A duration as Go prints it (`10s`, `1m20s`, `5m0s`).
fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_runtimes_128_plus_signal() {
        use std::os::unix::process::ExitStatusExt;
        // wait(2) statuses: low byte the signal, else the code in the second byte.
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(15)), 143);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(0)), 0);
    }

    #[test]
    fn back_off_reads_as_the_kubelet_writes_it() {
        assert_eq!(go_duration(Duration::from_secs(40)), "40s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
