//! The control loop of the local backend: a Deployment controller (keep the requested
//! number of replicas running, replace the ones that die), an endpoints controller
//! (only ready replicas receive traffic) and the HPA controller (the `hpa` port, fed
//! with CPU usage sampled from the replicas' cgroups), in one task.
//!
//! One task owns every replica, so there is no shared mutable state to get wrong:
//! the outside world sees a status snapshot and the timeline at the end.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::timeline::{ReplicaUsage, ScaleSample, Timeline};
use scaleproof_hpa::{
    Autoscaler, ConditionStatus, ContainerInput, ContainerUsage, PodInput, PodMetrics, PodPhase,
    ReadyCondition,
};
use scaleproof_load::{Endpoint, Targets};

use super::cgroup::CgroupDriver;
use super::probe::{ProbeSpec, Prober};
use super::replica::{Replica, ReplicaTemplate};

/// How often the loop looks at its replicas (exits, readiness, deadlines).
const TICK: Duration = Duration::from_millis(100);
/// The least time between two attempts to start a replica that failed to start.
const SPAWN_BACKOFF: Duration = Duration::from_secs(1);

/// What the outside world may see of a replica while the loop runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub name: String,
    pub pid: u32,
    pub url: String,
    pub ready: bool,
    pub terminating: bool,
}

pub(super) struct ControllerConfig {
    pub template: ReplicaTemplate,
    pub probe: ProbeSpec,
    pub cgroups: CgroupDriver,
    pub cpu_request_millicores: u64,
    pub cpu_target_pct: u32,
    pub metric_resolution: Duration,
    pub sync_period: Duration,
    pub termination_grace: Duration,
}

/// A replica and the loop's bookkeeping about it.
struct Managed {
    replica: Replica,
    prober: Prober,
    /// (when, cumulative CPU time) at the previous metric sample.
    last_usage: Option<(Instant, Duration)>,
    metric: Option<PodMetrics>,
    kill_at: Option<Instant>,
}

pub(super) struct Controller {
    config: ControllerConfig,
    autoscaler: Autoscaler,
    targets: Targets,
    /// The Deployment's `spec.replicas`, as the HPA last set it.
    spec_replicas: u32,
    managed: Vec<Managed>,
    next_index: u32,
    epoch: Instant,
    timeline: Timeline,
    status: Arc<Mutex<Vec<ReplicaStatus>>>,
    last_spawn_failure: Option<Instant>,
}

impl Controller {
    /// Takes over replicas that are already running and ready (started by
    /// [`super::LocalCluster::start`]).
    pub(super) fn new(
        config: ControllerConfig,
        autoscaler: Autoscaler,
        targets: Targets,
        ready: Vec<(Replica, Prober)>,
        next_index: u32,
        epoch: Instant,
        status: Arc<Mutex<Vec<ReplicaStatus>>>,
    ) -> Self {
        let spec_replicas = u32::try_from(ready.len()).unwrap_or(u32::MAX);
        let managed = ready
            .into_iter()
            .map(|(replica, prober)| Managed {
                replica,
                prober,
                last_usage: None,
                metric: None,
                kill_at: None,
            })
            .collect();
        let controller = Controller {
            config,
            autoscaler,
            targets,
            spec_replicas,
            managed,
            next_index,
            epoch,
            timeline: Timeline::default(),
            status,
            last_spawn_failure: None,
        };
        controller.publish_status();
        controller
    }

    /// Runs until `cancel` fires, then stops every replica and returns the timeline.
    pub(super) async fn run(mut self, cancel: CancellationToken) -> Timeline {
        self.record_start();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_metric = Instant::now();
        let mut next_sync = Instant::now() + self.config.sync_period;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            self.reap(now);
            self.update_readiness(now);
            self.sync_targets();
            if now >= next_metric {
                self.sample_metrics(now);
                next_metric = now + self.config.metric_resolution;
            }
            if now >= next_sync {
                self.sync(now);
                next_sync = now + self.config.sync_period;
            }
            self.converge(now);
            self.publish_status();
        }
        self.shutdown().await;
        self.timeline
    }

    fn t_s(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.epoch).as_secs_f64()
    }

    fn since_epoch(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.epoch)
    }

    /// Removes replicas whose process has exited: drained ones quietly, others as
    /// crashes (the Deployment part of the loop replaces them).
    fn reap(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.managed.len() {
            let m = &mut self.managed[i];
            let Some(status) = m.replica.exit_status() else {
                if m.kill_at.is_some_and(|deadline| now >= deadline) {
                    tracing::warn!(
                        "{} did not drain within the grace period; killing it",
                        m.replica.name
                    );
                    m.replica.kill();
                }
                i += 1;
                continue;
            };
            let m = self.managed.swap_remove(i);
            let t = self.t_s(now);
            if m.replica.terminating {
                tracing::debug!("{} drained and exited ({status})", m.replica.name);
            } else {
                let message = format!(
                    "{} exited unexpectedly ({status}); the replica set replaces it",
                    m.replica.name
                );
                tracing::warn!("{message}");
                self.timeline.event(t, message);
            }
            // Dropping `m` removes the replica's cgroup.
        }
    }

    /// Takes the probes' verdicts (a saturated replica that fails its probes becomes
    /// unready, as on a cluster) and records when readiness changed.
    fn update_readiness(&mut self, now: Instant) {
        for m in &mut self.managed {
            if m.replica.terminating {
                continue;
            }
            let ready = m.prober.is_ready();
            if ready != m.replica.ready {
                m.replica.ready = ready;
                m.replica.ready_since = Some(now);
            }
        }
    }

    /// The endpoints controller: the load goes to exactly the ready replicas that are
    /// not terminating. The set is never emptied: with no ready replica, requests keep
    /// failing against the last addresses, as against a Service without endpoints,
    /// until a replica is ready again.
    fn sync_targets(&self) {
        let wanted: Vec<Endpoint> = self
            .managed
            .iter()
            .filter(|m| m.replica.ready && !m.replica.terminating)
            .filter_map(|m| Endpoint::parse(&m.replica.base_url()).ok())
            .collect();
        if wanted.is_empty() {
            return;
        }
        let current = self.targets.snapshot();
        if current.len() != wanted.len() || wanted.iter().any(|e| !current.contains(e)) {
            // `set` only refuses an empty list, which was excluded above.
            let _ = self.targets.set(wanted);
        }
    }

    /// Turns cumulative CPU time into millicores over the last window, like
    /// metrics-server does with the kubelet's counters.
    fn sample_metrics(&mut self, now: Instant) {
        let epoch = self.epoch;
        for m in &mut self.managed {
            let Some(cpu) = m.replica.cpu_time() else {
                continue;
            };
            if let Some((then, before)) = m.last_usage {
                let wall = now.saturating_duration_since(then);
                if !wall.is_zero() {
                    let used = cpu.saturating_sub(before);
                    let millicores =
                        (used.as_secs_f64() / wall.as_secs_f64() * 1000.0).round() as u64;
                    m.metric = Some(PodMetrics {
                        timestamp: now.saturating_duration_since(epoch),
                        window: wall,
                        containers: vec![ContainerUsage {
                            name: "app".to_owned(),
                            cpu_millicores: Some(millicores),
                            memory_bytes: None,
                        }],
                    });
                }
            }
            m.last_usage = Some((now, cpu));
        }
    }

    /// One HPA sync: reconcile, record the sample, set the new replica count.
    fn sync(&mut self, now: Instant) {
        let pods: Vec<PodInput> = self
            .managed
            .iter()
            .map(|m| PodInput {
                name: m.replica.name.clone(),
                phase: PodPhase::Running,
                deleted: m.replica.terminating,
                ready: Some(ReadyCondition {
                    status: if m.replica.ready {
                        ConditionStatus::True
                    } else {
                        ConditionStatus::False
                    },
                    last_transition: self
                        .since_epoch(m.replica.ready_since.unwrap_or(m.replica.started_at)),
                }),
                start_time: Some(self.since_epoch(m.replica.started_at)),
                containers: vec![ContainerInput {
                    name: "app".to_owned(),
                    cpu_request_millicores: Some(self.config.cpu_request_millicores),
                    memory_request_bytes: None,
                }],
                metrics: m.metric.clone(),
            })
            .collect();
        let decision = self
            .autoscaler
            .reconcile(self.since_epoch(now), self.spec_replicas, &pods);
        let t = self.t_s(now);
        if decision.desired_replicas != self.spec_replicas {
            let message = format!(
                "scaled {} -> {}: {}",
                self.spec_replicas, decision.desired_replicas, decision.explanation
            );
            tracing::info!("{message}");
            self.timeline.event(t, message);
            self.spec_replicas = decision.desired_replicas;
        }
        let live = self.managed.iter().filter(|m| !m.replica.terminating);
        let sample = ScaleSample {
            t_s: t,
            desired_replicas: Some(decision.desired_replicas),
            current_replicas: Some(u32::try_from(live.clone().count()).unwrap_or(u32::MAX)),
            ready_replicas: u32::try_from(live.clone().filter(|m| m.replica.ready).count())
                .unwrap_or(u32::MAX),
            cpu_utilization_pct: decision.cpu_utilization_pct(),
            cpu_target_pct: self.config.cpu_target_pct,
            replicas: live
                .map(|m| ReplicaUsage {
                    name: m.replica.name.clone(),
                    cpu_millicores: m
                        .metric
                        .as_ref()
                        .and_then(|x| x.containers.first())
                        .and_then(|c| c.cpu_millicores),
                    ready: m.replica.ready,
                })
                .collect(),
            conditions: decision.conditions.into_iter().map(Into::into).collect(),
        };
        self.timeline.push(sample);
    }

    /// The state the scenario starts from, before the HPA's first sync (no metric yet,
    /// no conditions): charts and "first scale-up" measure from here.
    fn record_start(&mut self) {
        let replicas = u32::try_from(self.managed.len()).unwrap_or(u32::MAX);
        let ready = u32::try_from(self.managed.iter().filter(|m| m.replica.ready).count())
            .unwrap_or(u32::MAX);
        self.timeline.start_replicas = Some(ready);
        self.timeline.push(ScaleSample {
            t_s: 0.0,
            desired_replicas: Some(self.spec_replicas),
            current_replicas: Some(replicas),
            ready_replicas: ready,
            cpu_utilization_pct: None,
            cpu_target_pct: self.config.cpu_target_pct,
            replicas: self
                .managed
                .iter()
                .map(|m| ReplicaUsage {
                    name: m.replica.name.clone(),
                    cpu_millicores: None,
                    ready: m.replica.ready,
                })
                .collect(),
            conditions: Vec::new(),
        });
    }

    /// The Deployment's job: as many live replicas as `spec_replicas`.
    fn converge(&mut self, now: Instant) {
        let live = self
            .managed
            .iter()
            .filter(|m| !m.replica.terminating)
            .count();
        let wanted = self.spec_replicas as usize;
        if live < wanted {
            if self
                .last_spawn_failure
                .is_some_and(|t| now.duration_since(t) < SPAWN_BACKOFF)
            {
                return;
            }
            for _ in live..wanted {
                if let Err(e) = self.spawn() {
                    let message = format!("cannot start a replica: {e}");
                    tracing::error!("{message}");
                    let t = self.t_s(now);
                    self.timeline.event(t, message);
                    self.last_spawn_failure = Some(now);
                    break;
                }
            }
        } else if live > wanted {
            for _ in wanted..live {
                self.terminate_one(now);
            }
        }
    }

    fn spawn(&mut self) -> Result<(), super::replica::ReplicaError> {
        self.next_index += 1;
        let name = format!("replica-{}", self.next_index);
        let replica = Replica::spawn(&self.config.template, &name, &self.config.cgroups)?;
        let prober = Prober::start(replica.addr, self.config.probe.clone());
        tracing::debug!("started {name} on {} (pid {})", replica.addr, replica.pid());
        self.managed.push(Managed {
            replica,
            prober,
            last_usage: None,
            metric: None,
            kill_at: None,
        });
        Ok(())
    }

    /// Scale-down: picks the victim like a ReplicaSet does (unready before ready,
    /// newer before older), takes it out of the endpoint set first, then sends SIGTERM
    /// so it drains what it already accepted. No request is lost to a scale-down.
    fn terminate_one(&mut self, now: Instant) {
        let victim = self
            .managed
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.replica.terminating)
            .min_by_key(|(_, m)| (m.replica.ready, std::cmp::Reverse(m.replica.started_at)))
            .map(|(i, _)| i);
        let Some(i) = victim else { return };
        self.managed[i].replica.terminating = true;
        self.sync_targets();
        let m = &mut self.managed[i];
        m.replica.terminate();
        m.kill_at = Some(now + self.config.termination_grace);
    }

    fn publish_status(&self) {
        let status = self
            .managed
            .iter()
            .map(|m| ReplicaStatus {
                name: m.replica.name.clone(),
                pid: m.replica.pid(),
                url: m.replica.base_url(),
                ready: m.replica.ready,
                terminating: m.replica.terminating,
            })
            .collect();
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }

    /// Stops every replica: SIGTERM, wait for the drain (bounded by the grace
    /// period), SIGKILL what is left. Dropping a replica removes its cgroup.
    async fn shutdown(&mut self) {
        for m in &mut self.managed {
            if !m.replica.terminating {
                m.replica.terminate();
            }
        }
        let deadline = Instant::now() + self.config.termination_grace;
        while Instant::now() < deadline
            && self
                .managed
                .iter_mut()
                .any(|m| m.replica.exit_status().is_none())
        {
            tokio::time::sleep(TICK).await;
        }
        self.managed.clear();
        self.publish_status();
    }
}
