//! The scenario numbers that follow from one pod's measured capacity, the HPA and
//! the backend's detection chain, each with its arithmetic, so a `stress.toml` is
//! derived rather than guessed.

/// One pod, as measured and as its manifest limits it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pod {
    /// Requests per second one pod completes at its CPU limit.
    pub capacity_per_s: f64,
    pub cpu_request_m: u64,
    pub cpu_limit_m: u64,
}

/// The HPA of the manifests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hpa {
    pub target_pct: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
}

/// From load start to a new pod taking traffic, at the worst, on the backend: the
/// time a scenario must give the HPA before judging whether it acted.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub worst_s: f64,
    /// Its parts, for the arithmetic.
    pub parts: String,
}

impl Chain {
    /// The local backend at `fast` timing: every loop 1 s, pods start at once.
    pub fn local_fast() -> Self {
        Chain {
            worst_s: 5.0,
            parts: "a kubelet sample, a scrape and an HPA sync of 1 s each, a pod start and \
                    its first probe: ~5 s"
                .into(),
        }
    }

    /// kind (and the local backend rehearsing it): cAdvisor housekeeping 10-20 s,
    /// metrics-server's 15 s resolution, the HPA's 5 s sync (k8s/kind.yaml), a pod
    /// start of up to ~2 s and its readiness probe (period 2 s).
    pub fn kind() -> Self {
        Chain {
            worst_s: 45.0,
            parts: "housekeeping <= 20 s + scrape <= 15 s + HPA sync <= 5 s + pod start ~2 s \
                    + readiness ~2 s: <= 45 s"
                .into(),
        }
    }

    /// An existing cluster with upstream's defaults: metrics-server's 60 s resolution
    /// and the controller-manager's 15 s sync; image pulls not counted.
    pub fn cluster() -> Self {
        Chain {
            worst_s: 105.0,
            parts: "housekeeping <= 20 s + scrape <= 60 s (metrics-server's default) + HPA sync \
                    <= 15 s (the controller-manager's default) + pod start and readiness ~10 s: \
                    <= 105 s"
                .into(),
        }
    }
}

/// A proposed scenario and how its numbers were reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub scenario: toml::Table,
    pub arithmetic: Vec<String>,
}

fn one_decimal(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The rate at which one pod's CPU reaches the HPA's target.
pub fn rate_at_target(pod: &Pod, hpa: &Hpa) -> f64 {
    pod.capacity_per_s * pod.cpu_request_m as f64 * f64::from(hpa.target_pct)
        / 100.0
        / pod.cpu_limit_m as f64
}

fn table(entries: Vec<(&str, toml::Value)>) -> toml::Table {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// normal-load, scale-up and bottleneck scenarios for this pod, HPA and chain.
pub fn propose(pod: &Pod, hpa: &Hpa, chain: &Chain) -> Vec<Proposal> {
    let c = pod.capacity_per_s;
    let cost_m = pod.cpu_limit_m as f64 / c; // millicore-seconds per request per second
    let at_target = rate_at_target(pod, hpa);
    let target_m = pod.cpu_request_m as f64 * f64::from(hpa.target_pct) / 100.0;
    let basis = format!(
        "one pod completes {c:.1} req/s at its {limit}m limit ({cost:.1} ms of CPU per request); \
         the HPA's target is {t} % of the {req}m request = {target_m:.0}m, reached at \
         {c:.1} x {target_m:.0} / {limit} = {at_target:.1} req/s",
        limit = pod.cpu_limit_m,
        cost = cost_m,
        t = hpa.target_pct,
        req = pod.cpu_request_m,
    );

    // Normal load: well under the target, long enough for a wrong scale-up to show.
    let normal_rate = one_decimal((0.4 * at_target).max(0.5));
    let normal_duration = (2.0 * chain.worst_s).max(20.0).ceil();
    let normal_util = normal_rate * cost_m / pod.cpu_request_m as f64 * 100.0;
    let normal = Proposal {
        scenario: table(vec![
            ("name", "normal-load".into()),
            (
                "description",
                format!("{normal_rate} req/s: one pod handles it, the HPA takes no action").into(),
            ),
            ("rate", normal_rate.into()),
            ("duration_s", normal_duration.into()),
            (
                "expect",
                toml::Value::Table(table(vec![
                    ("min_success_rate", 1.0.into()),
                    ("max_peak_replicas", i64::from(hpa.min_replicas).into()),
                    (
                        "max_cpu_utilization_pct",
                        i64::from(hpa.target_pct.saturating_sub(5).max(1)).into(),
                    ),
                ])),
            ),
        ]),
        arithmetic: vec![
            basis.clone(),
            format!(
                "rate = 0.4 x {at_target:.1} = {normal_rate} req/s: {normal_util:.0} % of the \
                 request, under the {t} % target with room for noise",
                t = hpa.target_pct
            ),
            format!(
                "duration = max(2 x the detection chain, 20 s) = {normal_duration:.0} s ({}), \
                 so a wrong scale-up has time to happen",
                chain.parts
            ),
        ],
    };

    // Scale-up: one pod keeps up (no backlog) while its CPU is well over target.
    let wanted = (2.0 * at_target).max(0.75 * c);
    let up_rate = one_decimal(wanted.min(0.9 * c));
    let up_util = up_rate * cost_m / pod.cpu_request_m as f64 * 100.0;
    let ratio = up_util / f64::from(hpa.target_pct);
    let asked = ((f64::from(hpa.min_replicas) * ratio).ceil() as u32).min(hpa.max_replicas);
    let up_duration = (2.0 * chain.worst_s + 10.0).ceil();
    let mut up_arithmetic = vec![
        format!(
            "rate = max(2 x {at_target:.1}, 0.75 x {c:.1}) = {:.1}, at most 0.9 x {c:.1}: \
             {up_rate} req/s; one pod keeps up ({busy:.0} % busy, no backlog) while its CPU \
             reads {up_util:.0} % of the request, {ratio:.1}x the target: the HPA asks for \
             ceil({min} x {ratio:.1}) = {asked} pods (max {max})",
            wanted,
            busy = up_rate / c * 100.0,
            min = hpa.min_replicas,
            max = hpa.max_replicas,
        ),
        format!(
            "duration = 2 x the detection chain + 10 s = {up_duration:.0} s; the first \
             scale-up must come within the chain, {:.0} s",
            chain.worst_s
        ),
    ];
    if 2.0 * at_target > 0.9 * c {
        up_arithmetic.push(format!(
            "note: the target ({t} %) is so close to the limit that twice it is more than one \
             pod serves; the scale-up runs at 0.9 x capacity and the HPA sees less than 2x",
            t = hpa.target_pct
        ));
    }
    let scale_up = Proposal {
        scenario: table(vec![
            ("name", "scale-up".into()),
            (
                "description",
                format!("{up_rate} req/s, more than the target, less than one pod's capacity: the HPA scales out").into(),
            ),
            ("rate", up_rate.into()),
            ("duration_s", up_duration.into()),
            (
                "expect",
                toml::Value::Table(table(vec![
                    ("min_success_rate", 0.99.into()),
                    (
                        "min_peak_replicas",
                        i64::from((hpa.min_replicas + 1).min(hpa.max_replicas)).into(),
                    ),
                    ("scale_up_within_s", chain.worst_s.ceil().into()),
                ])),
            ),
        ]),
        arithmetic: up_arithmetic,
    };

    // Bottleneck: more demand than maxReplicas pods serve, closed loop so the backlog
    // stays bounded by the workers.
    let top = f64::from(hpa.max_replicas) * c;
    let workers = 10 * hpa.max_replicas;
    let requests = ((c * chain.worst_s + top * 30.0) / 100.0).ceil() as i64 * 100;
    let bottleneck = Proposal {
        scenario: table(vec![
            ("name", "bottleneck".into()),
            (
                "description",
                format!(
                    "{workers} workers, {requests} requests: demand beyond {max} pods",
                    max = hpa.max_replicas
                )
                .into(),
            ),
            ("requests", requests.into()),
            ("concurrency", i64::from(workers).into()),
            (
                "expect",
                toml::Value::Table(table(vec![
                    ("min_success_rate", 0.8.into()),
                    ("reaches_max_replicas", true.into()),
                    ("scaling_limited", true.into()),
                ])),
            ),
        ]),
        arithmetic: vec![
            format!(
                "{max} pods serve at most {max} x {c:.1} = {top:.0} req/s; {workers} workers \
                 keep ~10 requests queued at each, so demand stays above that",
                max = hpa.max_replicas
            ),
            format!(
                "requests = {c:.1} req/s x {chain:.0} s (one pod through the detection chain) \
                 + {top:.0} req/s x 30 s (at maxReplicas) = {requests} (rounded up to 100)",
                chain = chain.worst_s
            ),
        ],
    };
    vec![normal, scale_up, bottleneck]
}

#[cfg(test)]
mod tests {
    use super::*;

    const IRIS_LOCAL: Pod = Pod {
        capacity_per_s: 40.0,
        cpu_request_m: 100,
        cpu_limit_m: 200,
    };
    const HPA: Hpa = Hpa {
        target_pct: 50,
        min_replicas: 1,
        max_replicas: 3,
    };

    fn scenario<'a>(proposals: &'a [Proposal], name: &str) -> &'a toml::Table {
        &proposals
            .iter()
            .find(|p| p.scenario["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no {name}"))
            .scenario
    }

    #[test]
    fn iris_servers_local_numbers_follow_from_its_capacity() {
        assert_eq!(rate_at_target(&IRIS_LOCAL, &HPA), 10.0);
        let p = propose(&IRIS_LOCAL, &HPA, &Chain::local_fast());
        let normal = scenario(&p, "normal-load");
        assert_eq!(normal["rate"].as_float(), Some(4.0));
        assert_eq!(normal["duration_s"].as_float(), Some(20.0));
        assert_eq!(
            normal["expect"]["max_cpu_utilization_pct"].as_integer(),
            Some(45)
        );
        let up = scenario(&p, "scale-up");
        assert_eq!(up["rate"].as_float(), Some(30.0));
        assert_eq!(up["expect"]["min_peak_replicas"].as_integer(), Some(2));
        assert_eq!(up["expect"]["scale_up_within_s"].as_float(), Some(5.0));
        let bottleneck = scenario(&p, "bottleneck");
        assert_eq!(bottleneck["concurrency"].as_integer(), Some(30));
        assert_eq!(bottleneck["requests"].as_integer(), Some(3800));
        let text = p[1].arithmetic.join("\n");
        assert!(
            text.contains("150 % of the request, 3.0x the target"),
            "{text}"
        );
        assert!(text.contains("ceil(1 x 3.0) = 3 pods"), "{text}");
    }

    /// README's hand-derived kind numbers (20 req/s per pod: 15 req/s for
    /// scale-in-graceful's load) come out of the same arithmetic.
    #[test]
    fn kinds_chain_gives_longer_scenarios_and_the_hand_derived_rate() {
        let pod = Pod {
            capacity_per_s: 20.0,
            ..IRIS_LOCAL
        };
        let p = propose(&pod, &HPA, &Chain::kind());
        let up = scenario(&p, "scale-up");
        assert_eq!(up["rate"].as_float(), Some(15.0));
        assert_eq!(up["duration_s"].as_float(), Some(100.0));
        assert_eq!(
            scenario(&p, "normal-load")["duration_s"].as_float(),
            Some(90.0)
        );
    }

    #[test]
    fn a_target_close_to_the_limit_is_said_not_hidden() {
        let hpa = Hpa {
            target_pct: 190,
            ..HPA
        };
        let p = propose(&IRIS_LOCAL, &hpa, &Chain::local_fast());
        let up = scenario(&p, "scale-up");
        assert_eq!(up["rate"].as_float(), Some(36.0), "0.9 x capacity");
        assert!(
            p[1].arithmetic
                .iter()
                .any(|l| l.starts_with("note: the target"))
        );
    }

    /// What calibrate proposes must parse as scenarios of a config.
    #[test]
    fn the_proposals_are_scenarios_the_gate_accepts() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let path = root.join("stress.toml");
        let text = std::fs::read_to_string(&path).expect("stress.toml");
        let proposals = propose(&IRIS_LOCAL, &HPA, &Chain::local_fast());
        let out = super::super::staircase::config_with(
            &path,
            &text,
            proposals.into_iter().map(|p| p.scenario).collect(),
        )
        .expect("config");
        let config =
            crate::scenario::StressConfig::parse(std::path::Path::new("/x/proposed.toml"), &out)
                .unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert_eq!(config.scenarios.len(), 3);
    }
}
