//! Parallel lanes: how many scenarios may run at once on the node, and in which
//! order lanes take them.
//!
//! A lane runs one scenario at a time in its own namespace. What a lane may hold at
//! once is the CPU *limits* of its running scenario at `maxReplicas` plus those of
//! one namespace prepared ahead at `minReplicas`; lanes run side by side only while
//! all of them fit the node's allocatable CPU less what its other pods already
//! requested (kind: the control plane, CoreDNS, metrics-server). Limits, not
//! requests, because a lane's pods are meant to be driven to their limits: two
//! lanes that fit by requests would throttle each other, and the throughput
//! verdicts would measure the neighbour.
//!
//! Order: with one lane, the file's. With more, lanes take scenarios from one queue
//! as they become free, so the queue starts with the scenarios whose length the
//! config states (a duration, stages, an open-loop count at a rate), longest first,
//! then the others in file order: the long one runs beside the short ones instead
//! of after them. A closed-loop request count lasts as long as the service takes,
//! which is what the gate measures, so it is not guessed here.

use std::fmt;

use scaleproof_load::{Mode, Stop};

use crate::backend::BackendKind;
pub use crate::cluster::capacity::NodeCpu;
use crate::manifests::Manifests;
use crate::report::LanesReport;
use crate::scenario::StressConfig;

/// At most this many lanes: each holds two node ports (its running namespace and
/// the one prepared for it), from kind's pool of [`crate::cluster::fresh::POOL_SIZE`].
pub const MAX_LANES: usize = crate::cluster::fresh::POOL_SIZE as usize / 2;

/// One scenario run as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Position in the run's scenario list.
    pub index: usize,
    pub name: String,
    /// CPU limits of its pods at `maxReplicas`.
    pub running_m: u64,
    /// CPU limits of its pods at `minReplicas` (its namespace prepared ahead).
    pub prepared_m: u64,
    /// How long its load lasts when the config says so (see the module docs).
    pub length_s: Option<f64>,
}

/// The scenarios `names` of `config` as they run on `profile`, for the planner;
/// an error names the scenario whose HPA or the workload whose limit is unreadable.
pub fn candidates(
    config: &StressConfig,
    manifests: &Manifests,
    profile: BackendKind,
    names: &[String],
) -> Result<Vec<Candidate>, String> {
    let limit_m = manifests
        .workload()
        .map_err(|e| e.to_string())?
        .cpu_limit_millicores;
    names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let scenario = config
                .scenario(name)
                .ok_or_else(|| format!("no scenario {name} in the config"))?
                .on(profile);
            let hpa = scenario
                .hpa
                .apply_to(&manifests.hpa)
                .map_err(|e| format!("scenario {name}: {e}"))?;
            let spec = hpa.spec.unwrap_or_default();
            let max = u64::try_from(spec.max_replicas).unwrap_or(0);
            let min = spec
                .min_replicas
                .and_then(|m| u64::try_from(m).ok())
                .unwrap_or(1);
            Ok(Candidate {
                index,
                name: name.clone(),
                running_m: limit_m * max,
                prepared_m: limit_m * min,
                length_s: stated_length_s(&scenario.load).map(|s| s + scenario.observe_after_s),
            })
        })
        .collect()
}

/// How long `load` lasts when the config says so: a duration (stages included) or
/// a count at a constant open-loop rate. A closed loop's count lasts as long as the
/// service takes.
fn stated_length_s(load: &Mode) -> Option<f64> {
    match (load, load.stop()) {
        (_, Stop::Duration(d)) => Some(d.as_secs_f64()),
        (Mode::Open { rate, .. }, Stop::Requests(n)) if !rate.is_ramp() => {
            Some(n as f64 / rate.start_per_s)
        }
        _ => None,
    }
}

/// How many lanes were asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lanes {
    /// As many as fit (at most [`MAX_LANES`]).
    Auto,
    /// This many, or fewer where they do not fit.
    Exactly(usize),
}

impl std::str::FromStr for Lanes {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Lanes::Auto),
            n => match n.parse::<usize>() {
                Ok(0) | Err(_) => Err(format!(
                    "--lanes takes `auto` or a number of lanes from 1, got `{s}`"
                )),
                Ok(n) => Ok(Lanes::Exactly(n)),
            },
        }
    }
}

/// What the planner decided, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct LanePlan {
    pub lanes: usize,
    /// Indices into the candidates, in the order lanes take them.
    pub queue: Vec<usize>,
    /// What one lane may hold at once (the largest scenario's pods at `maxReplicas`
    /// plus the largest prepared namespace's).
    pub lane_cpu_m: u64,
    /// What lanes may take (`None` when lanes were not planned against a node).
    pub node: Option<NodeCpu>,
    /// One sentence for the log and the report.
    pub reason: String,
}

impl LanePlan {
    /// One lane in file order, for `reason` (a backend without fresh namespaces,
    /// `--lanes 1`).
    pub fn serial(count: usize, reason: impl Into<String>) -> Self {
        LanePlan {
            lanes: 1,
            queue: (0..count).collect(),
            lane_cpu_m: 0,
            node: None,
            reason: reason.into(),
        }
    }
}

/// Plans lanes for `candidates` (in file order) on `node`.
pub fn plan(candidates: &[Candidate], node: &NodeCpu, asked: Lanes) -> LanePlan {
    let lane_cpu_m = candidates.iter().map(|c| c.running_m).max().unwrap_or(0)
        + candidates.iter().map(|c| c.prepared_m).max().unwrap_or(0);
    let budget = node.budget_m();
    // Pods without CPU limits: nothing to fit, the pool bounds the lanes.
    let fit = budget
        .checked_div(lane_cpu_m)
        .map_or(MAX_LANES, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let want = match asked {
        Lanes::Auto => usize::MAX,
        Lanes::Exactly(n) => n,
    };
    let lanes = want.min(fit).min(MAX_LANES).min(candidates.len()).max(1);
    let figures = format!(
        "a lane holds {lane_cpu_m}m of CPU limits; the node has {budget}m free \
         ({}m allocatable - {}m requested, {})",
        node.allocatable_m, node.reserved_m, node.source
    );
    let bound = if fit == 0 {
        "even one lane does not fit, so one scenario at a time".to_string()
    } else if lanes == want {
        "as asked".to_string()
    } else if lanes == fit {
        "as many as the node's CPU holds".to_string()
    } else if lanes == MAX_LANES {
        format!("the most the node port pool allows ({MAX_LANES}: two ports a lane)")
    } else {
        "one per scenario".to_string()
    };
    let narrowed = match asked {
        Lanes::Exactly(n) if n != lanes => format!(" (narrowed from --lanes {n})"),
        _ => String::new(),
    };
    let reason = format!("{lanes} lane(s){narrowed}, {bound}: {figures}");
    let mut queue: Vec<usize> = (0..candidates.len()).collect();
    if lanes > 1 {
        // Stable: the unknown lengths keep their file order, behind the known ones.
        queue.sort_by(|&a, &b| {
            let (a, b) = (candidates[a].length_s, candidates[b].length_s);
            match (a, b) {
                (Some(a), Some(b)) => b.total_cmp(&a),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
        });
    }
    LanePlan {
        lanes,
        queue,
        lane_cpu_m,
        node: Some(node.clone()),
        reason,
    }
}

impl LanePlan {
    /// What `report.json` records of the plan.
    pub fn report(&self) -> LanesReport {
        LanesReport {
            lanes: self.lanes,
            reason: self.reason.clone(),
            lane_cpu_millicores: self.node.as_ref().map(|_| self.lane_cpu_m),
            node_allocatable_millicores: self.node.as_ref().map(|n| n.allocatable_m),
            node_requested_millicores: self.node.as_ref().map(|n| n.reserved_m),
        }
    }
}

impl fmt::Display for LanePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(index: usize, name: &str, max: u64, length_s: Option<f64>) -> Candidate {
        Candidate {
            index,
            name: name.into(),
            running_m: 200 * max,
            prepared_m: 200,
            length_s,
        }
    }

    /// This repository's five scenarios at kind's numbers (restricted-2000 capped at
    /// one pod; scale-in-graceful's stages and normal-load's duration are stated).
    fn ours() -> Vec<Candidate> {
        vec![
            candidate(0, "normal-load", 3, Some(60.0)),
            candidate(1, "scale-up-1000", 3, None),
            candidate(2, "bottleneck-2000", 3, None),
            candidate(3, "restricted-2000", 1, None),
            candidate(4, "scale-in-graceful", 3, Some(240.0)),
        ]
    }

    fn node(cpus: u64, reserved_m: u64) -> NodeCpu {
        NodeCpu {
            allocatable_m: cpus * 1000,
            reserved_m,
            source: "test".into(),
        }
    }

    #[test]
    fn a_four_vcpu_runner_runs_two_lanes_with_the_long_scenario_first() {
        // kind's control plane, CoreDNS, kindnet and metrics-server request ~1050m.
        let plan = plan(&ours(), &node(4, 1050), Lanes::Auto);
        assert_eq!(plan.lanes, 2, "{plan}");
        assert!(plan.reason.contains("node port pool"), "{plan}");
        assert_eq!(plan.lane_cpu_m, 800);
        assert_eq!(
            plan.queue,
            [4, 0, 1, 2, 3],
            "known lengths first, longest first"
        );
    }

    #[test]
    fn lanes_never_oversubscribe_the_node_by_limits() {
        for cpus in 0..8 {
            for reserved in [0, 500, 1050, 3000] {
                for asked in [
                    Lanes::Auto,
                    Lanes::Exactly(1),
                    Lanes::Exactly(2),
                    Lanes::Exactly(5),
                ] {
                    let node = node(cpus, reserved);
                    let plan = plan(&ours(), &node, asked);
                    assert!(plan.lanes >= 1);
                    if plan.lanes > 1 {
                        assert!(
                            plan.lanes as u64 * plan.lane_cpu_m <= node.budget_m(),
                            "{cpus} CPUs, {reserved}m reserved, {asked:?}: {plan}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn too_small_a_node_narrows_and_says_why() {
        let plan = plan(&ours(), &node(2, 500), Lanes::Exactly(2));
        assert_eq!(plan.lanes, 1);
        assert!(plan.reason.contains("narrowed from --lanes 2"), "{plan}");
        assert!(
            plan.reason.contains("as many as the node's CPU holds"),
            "{plan}"
        );
        assert!(plan.reason.contains("1500m free"), "{plan}");
        let none_fits = plan_for_one_cpu();
        assert!(
            none_fits.reason.contains("even one lane does not fit"),
            "{none_fits}"
        );
    }

    fn plan_for_one_cpu() -> LanePlan {
        plan(&ours(), &node(1, 500), Lanes::Auto)
    }

    #[test]
    fn one_lane_keeps_the_file_order() {
        let plan = plan(&ours(), &node(16, 0), Lanes::Exactly(1));
        assert_eq!(plan.lanes, 1);
        assert_eq!(plan.queue, [0, 1, 2, 3, 4]);
        assert_eq!(LanePlan::serial(3, "shared").queue, [0, 1, 2]);
    }

    #[test]
    fn the_port_pool_and_the_scenario_count_bound_the_lanes() {
        let wide = plan(&ours(), &node(64, 0), Lanes::Exactly(8));
        assert_eq!(wide.lanes, MAX_LANES, "{wide}");
        assert!(wide.reason.contains("node port pool"), "{wide}");
        let one = plan(&ours()[..1], &node(64, 0), Lanes::Auto);
        assert_eq!(one.lanes, 1);
        assert!(one.reason.contains("one per scenario"), "{one}");
    }

    #[test]
    fn lanes_parse_auto_or_a_positive_number() {
        assert_eq!("auto".parse::<Lanes>(), Ok(Lanes::Auto));
        assert_eq!("2".parse::<Lanes>(), Ok(Lanes::Exactly(2)));
        for bad in ["0", "-1", "two", ""] {
            let e = bad.parse::<Lanes>().unwrap_err();
            assert!(e.contains("--lanes takes"), "{e}");
        }
    }
}
