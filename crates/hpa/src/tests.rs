//! Table-driven tests, one rule per case, with the arithmetic worked out by hand in
//! the case's comment. Every table runs all its rows and reports all mismatches.

use std::time::Duration;

use super::*;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Late enough that pods started at 0 are past the 5 min cpu initialization period.
const NOW: Duration = secs(1000);

/// A running pod started at 0, ready since 10 s, with one container `app` requesting
/// 100m and using `usage_m` millicores (so `usage_m` is also its utilization in percent).
fn pod(usage_m: u64) -> PodInput {
    PodInput {
        name: String::new(),
        phase: PodPhase::Running,
        deleted: false,
        ready: Some(ReadyCondition {
            status: ConditionStatus::True,
            last_transition: secs(10),
        }),
        start_time: Some(secs(0)),
        containers: vec![ContainerInput {
            name: "app".to_owned(),
            cpu_request_millicores: Some(100),
            memory_request_bytes: None,
        }],
        metrics: Some(PodMetrics {
            timestamp: secs(25),
            window: secs(15),
            containers: vec![ContainerUsage {
                name: "app".to_owned(),
                cpu_millicores: Some(usage_m),
                memory_bytes: None,
            }],
        }),
    }
}

fn pods(n: usize, usage_m: u64) -> Vec<PodInput> {
    vec![pod(usage_m); n]
}

fn tweak(mut pod: PodInput, change: impl FnOnce(&mut PodInput)) -> PodInput {
    change(&mut pod);
    pod
}

fn missing() -> PodInput {
    tweak(pod(0), |p| p.metrics = None)
}

fn pending() -> PodInput {
    tweak(pod(0), |p| {
        p.phase = PodPhase::Pending;
        p.metrics = None;
    })
}

/// A pod started at 900 s (inside the initialization period at `NOW`), ready at
/// 950 s, whose 15 s sample ends at `sample_end`.
fn fresh(usage_m: u64, sample_end: u64) -> PodInput {
    tweak(pod(usage_m), |p| {
        p.start_time = Some(secs(900));
        p.ready = Some(ReadyCondition {
            status: ConditionStatus::True,
            last_transition: secs(950),
        });
        if let Some(metrics) = &mut p.metrics {
            metrics.timestamp = secs(sample_end);
        }
    })
}

/// One cpu Resource metric at `target` % of the request, no behavior (legacy path).
fn legacy(min: u32, max: u32, target: u32) -> HpaSpec {
    HpaSpec {
        min_replicas: min,
        max_replicas: max,
        metrics: vec![cpu_utilization(target)],
        behavior: None,
    }
}

fn cpu_utilization(pct: u32) -> MetricSpec {
    MetricSpec::resource(ResourceName::Cpu, MetricTarget::Utilization(pct))
}

fn default_behavior() -> Behavior {
    Behavior {
        scale_up: ScalingRules::default_scale_up(),
        scale_down: ScalingRules::default_scale_down(),
    }
}

fn with_behavior(mut spec: HpaSpec, change: impl FnOnce(&mut Behavior)) -> HpaSpec {
    let mut behavior = default_behavior();
    change(&mut behavior);
    spec.behavior = Some(behavior);
    spec
}

fn policy(kind: PolicyKind, value: u32, period_s: u64) -> ScalingPolicy {
    ScalingPolicy {
        kind,
        value,
        period: secs(period_s),
    }
}

fn condition<'a>(decision: &'a Decision, type_: &str) -> Option<&'a Condition> {
    decision.conditions.iter().find(|c| c.type_ == type_)
}

fn has(decision: &Decision, type_: &str, status: &str, reason: &str) -> bool {
    decision
        .conditions
        .iter()
        .any(|c| c.is(type_, status, reason))
}

fn assert_no_failures(table: &str, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{table}: {} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------
// The original scenario

#[test]
fn original_scenario_one_pod_at_200_pct_is_clamped_to_max() {
    // 200m used of 100m requested = 200 %; target 50 % -> ratio 4; ceil(4 x 1) = 4;
    // maxReplicas 3 -> 3, ScalingLimited=True/TooManyReplicas. Same outcome on the
    // legacy path (limit max(2x1, 4) = 4 >= max) and with the repository's behavior
    // (scale-up limit max(ceil(1 x 2), 1 + 2) = 3, not below max, so TooManyReplicas).
    let from_repo = HpaSpec::from_yaml(&repo_hpa_yaml()).expect("k8s/hpa.yaml converts");
    for spec in [legacy(1, 3, 50), from_repo] {
        let mut autoscaler = Autoscaler::new(spec, ControllerOptions::default());
        let decision = autoscaler.reconcile(NOW, 1, &[pod(200)]);
        assert_eq!(decision.cpu_utilization_pct(), Some(200));
        assert_eq!(decision.recommended_replicas, Some(4));
        assert_eq!(decision.desired_replicas, 3, "{}", decision.explanation);
        assert!(
            has(&decision, SCALING_LIMITED, "True", "TooManyReplicas"),
            "{:?}",
            decision.conditions
        );
        let limited = condition(&decision, SCALING_LIMITED).expect("ScalingLimited set");
        assert_eq!(
            limited.message,
            "the desired replica count is more than the maximum replica count"
        );
        assert!(has(&decision, SCALING_ACTIVE, "True", "ValidMetricFound"));
        assert!(has(&decision, ABLE_TO_SCALE, "True", "SucceededRescale"));
        assert!(
            decision.explanation.contains("ratio 4.00")
                && decision.explanation.contains("scaling 1 -> 3"),
            "{}",
            decision.explanation
        );
    }
}

// ---------------------------------------------------------------------------------
// Replica calculator: the proposal before stabilization and limits

struct CalcCase {
    name: &'static str,
    target: u32,
    options: ControllerOptions,
    behavior: Option<Behavior>,
    current: u32,
    pods: Vec<PodInput>,
    utilization: u32,
    recommended: u32,
}

impl CalcCase {
    fn new(
        name: &'static str,
        target: u32,
        current: u32,
        pods: Vec<PodInput>,
        utilization: u32,
        recommended: u32,
    ) -> Self {
        Self {
            name,
            target,
            options: ControllerOptions::default(),
            behavior: None,
            current,
            pods,
            utilization,
            recommended,
        }
    }
}

#[test]
fn replica_calculator_rules() {
    let cases = vec![
        // desired = ceil(ratio x ready pods): 3 pods at 80 % -> 80/50 = 1.6; ceil(4.8) = 5.
        CalcCase::new("ceil of ratio times ready pods", 50, 3, pods(3, 80), 80, 5),
        // Integer division: (56 + 55) x 100 / 200 = 55 (not 55.5); 55/50 = 1.10 is within
        // tolerance, so keep 2. With 55.5 % it would be ratio 1.11 -> ceil(2.22) = 3.
        CalcCase::new(
            "utilization is truncated to an integer percent",
            50,
            2,
            vec![pod(56), pod(55)],
            55,
            2,
        ),
        // Tolerance upper boundary: 55/50 = 1.1 <= 1 + 0.1 -> keep 1.
        CalcCase::new(
            "ratio exactly 1.1 is within tolerance",
            50,
            1,
            vec![pod(55)],
            55,
            1,
        ),
        // Just above: 56/50 = 1.12 > 1.1 -> ceil(1.12 x 1) = 2.
        CalcCase::new("ratio 1.12 scales up", 50, 1, vec![pod(56)], 56, 2),
        // Tolerance lower boundary: 45/50 = 0.9 >= 1 - 0.1 -> keep 2.
        CalcCase::new(
            "ratio exactly 0.9 is within tolerance",
            50,
            2,
            pods(2, 45),
            45,
            2,
        ),
        // Just below: 44/50 = 0.88 -> ceil(0.88 x 10) = ceil(8.8) = 9.
        CalcCase::new("ratio 0.88 scales down", 50, 10, pods(10, 44), 44, 9),
        // Configurable tolerance 0.2: 58/50 = 1.16 <= 1.2 -> keep 1 (0.1 would give 2).
        CalcCase {
            options: ControllerOptions {
                tolerance: 0.2,
                ..ControllerOptions::default()
            },
            ..CalcCase::new(
                "controller tolerance is configurable",
                50,
                1,
                vec![pod(58)],
                58,
                1,
            )
        },
        // behavior.scaleUp.tolerance 0.05 overrides 0.1: 53/50 = 1.06 > 1.05 -> ceil(1.06) = 2.
        CalcCase {
            behavior: Some(Behavior {
                scale_up: ScalingRules {
                    tolerance: Some(0.05),
                    ..ScalingRules::default_scale_up()
                },
                ..default_behavior()
            }),
            ..CalcCase::new(
                "per-direction scale-up tolerance",
                50,
                1,
                vec![pod(53)],
                53,
                2,
            )
        },
        // Deleted and failed pods are ignored: only the 2 pods at 100 % count ->
        // ratio 2; ceil(2 x 2) = 4 (as missing pods they would trigger a re-check).
        CalcCase::new(
            "deleted and failed pods are ignored",
            50,
            2,
            vec![
                pod(100),
                pod(100),
                tweak(pod(0), |p| p.deleted = true),
                tweak(missing(), |p| p.phase = PodPhase::Failed),
            ],
            100,
            4,
        ),
        // Succeeded pods are terminal and ignored like failed ones: only the 2 pods at
        // 100 % count -> ratio 2; ceil(2 x 2) = 4. Counted as missing they would force a
        // re-check: (200 + 0 + 0)/400 = 50 % -> ratio 1.0 -> keep 2.
        CalcCase::new(
            "succeeded pods are ignored",
            50,
            2,
            vec![
                pod(100),
                pod(100),
                tweak(missing(), |p| p.phase = PodPhase::Succeeded),
                tweak(missing(), |p| p.phase = PodPhase::Succeeded),
            ],
            100,
            4,
        ),
        // Ready=Unknown is not "unready" (only False is): past initialization the pod
        // counts -> 2 x 100 % -> ratio 2 -> 4 (as unready: (100 + 0)/200 -> keep 2).
        CalcCase::new(
            "Ready Unknown pod counts after initialization",
            50,
            2,
            vec![
                pod(100),
                tweak(pod(100), |p| {
                    p.ready = Some(ReadyCondition {
                        status: ConditionStatus::Unknown,
                        last_transition: secs(10),
                    });
                }),
            ],
            100,
            4,
        ),
        // While initializing, Unknown passes too once the sample's window lies after the
        // transition: 970 >= 950 + 15 -> counts -> (100 + 200)/200 = 150 % -> ratio 3 -> 6.
        CalcCase::new(
            "Ready Unknown pod counts while initializing",
            50,
            2,
            vec![
                pod(100),
                tweak(fresh(200, 970), |p| {
                    p.ready = Some(ReadyCondition {
                        status: ConditionStatus::Unknown,
                        last_transition: secs(950),
                    });
                }),
            ],
            150,
            6,
        ),
        // Pending pod is unready; on a scale-up it counts as 0 % of its request:
        // (100 + 0) / 200 = 50 % -> ratio 1.0, within tolerance -> keep 2.
        CalcCase::new(
            "unready pending pod counts as idle on scale-up",
            50,
            2,
            vec![pod(100), pending()],
            100,
            2,
        ),
        // Still scales when the re-check stays above tolerance: 2 x 150 % -> ratio 3;
        // with the pending pod at 0: 300/300 = 100 % -> ratio 2; ceil(2 x 3) = 6.
        CalcCase::new(
            "scale-up with unready pods uses the re-checked ratio",
            50,
            3,
            vec![pod(150), pod(150), pending()],
            150,
            6,
        ),
        // Unready pods do not matter on a scale-down: 2 x 20 % -> 0.4; ceil(0.8) = 1.
        CalcCase::new(
            "unready pods are left out on scale-down",
            50,
            3,
            vec![pod(20), pod(20), pending()],
            20,
            1,
        ),
        // Missing pod on a scale-down counts as 100 % of its request:
        // 4 x 10 % -> ratio 0.2; (40 + 100)/500 = 28 % -> 0.56; ceil(0.56 x 5) = 3
        // (ceil(0.2 x 4) = 1 without the re-check).
        CalcCase::new(
            "missing pod counts as its full request on scale-down",
            50,
            5,
            vec![pod(10), pod(10), pod(10), pod(10), missing()],
            10,
            3,
        ),
        // Target above 100 %: missing pod counts as request x 200/100 = 200m:
        // 4 x 20 % vs 200 % -> ratio 0.1; (80 + 200)/500 = 56 % -> 0.28; ceil(1.4) = 2
        // (a 100 % fallback would give 36 % -> 0.18 -> ceil(0.9) = 1).
        CalcCase::new(
            "missing pod counts as the target when the target exceeds 100 %",
            200,
            5,
            vec![pod(20), pod(20), pod(20), pod(20), missing()],
            20,
            2,
        ),
        // Missing pod on a scale-up counts as 0: 2 x 150 % -> ratio 3;
        // (300 + 0)/300 = 100 % -> ratio 2; ceil(2 x 3) = 6.
        CalcCase::new(
            "missing pod counts as idle on scale-up",
            50,
            3,
            vec![pod(150), pod(150), missing()],
            150,
            6,
        ),
        // Direction flip keeps current: 40 % -> ratio 0.8 (down); with 2 missing pods at
        // 100 %: (40 + 200)/300 = 80 % -> ratio 1.6 (up) -> keep 3.
        CalcCase::new(
            "re-check that flips direction keeps the current count",
            50,
            3,
            vec![pod(40), missing(), missing()],
            40,
            3,
        ),
        // More pods than replicas (say mid-rollout): 3 x 10 % + 1 missing at 100 %:
        // (30 + 100)/400 = 32 % -> 0.64; ceil(0.64 x 4) = 3 > current 2 would be an
        // increase on a scale-down, so keep 2.
        CalcCase::new(
            "re-check count that reverses direction keeps the current count",
            50,
            2,
            vec![pod(10), pod(10), pod(10), missing()],
            10,
            2,
        ),
        // Same guard on a scale-up: the target wants 5 but only 2 pods exist (1 still
        // pending). 150 % -> ratio 3; re-check 150/200 = 75 % -> 1.5; ceil(1.5 x 2) = 3
        // < current 5 would be a decrease on a scale-up, so keep 5.
        CalcCase::new(
            "re-check count below current on a scale-up keeps the current count",
            50,
            5,
            vec![pod(150), pending()],
            150,
            5,
        ),
        // Initialization period: sample ends at 960 s < ready 950 s + window 15 s, so it
        // may include start-up work: unready. 100 % -> ratio 2 with an unready pod:
        // (100 + 0)/200 = 50 % -> 1.0 -> keep 2 (counting its 200 % would give 6).
        CalcCase::new(
            "sample overlapping the readiness change is distrusted while initializing",
            50,
            2,
            vec![pod(100), fresh(200, 960)],
            100,
            2,
        ),
        // Same pod whose sample ends at 970 s >= 965 s counts: (100 + 200)/200 = 150 %
        // -> ratio 3; ceil(3 x 2) = 6.
        CalcCase::new(
            "sample taken after readiness counts while initializing",
            50,
            2,
            vec![pod(100), fresh(200, 970)],
            150,
            6,
        ),
        // Initializing and Ready=False: unready whatever the sample -> as above, keep 2.
        CalcCase::new(
            "not-ready pod is unready while initializing",
            50,
            2,
            vec![
                pod(100),
                tweak(fresh(200, 970), |p| {
                    p.ready = Some(ReadyCondition {
                        status: ConditionStatus::False,
                        last_transition: secs(950),
                    });
                }),
            ],
            100,
            2,
        ),
        // Past initialization, Ready=False but it was ready once (last transition at
        // 500 s, long after start + 30 s): it counts -> 2 x 100 % -> ratio 2 -> 4.
        CalcCase::new(
            "pod that lost readiness after initialization still counts",
            50,
            2,
            vec![
                pod(100),
                tweak(pod(100), |p| {
                    p.ready = Some(ReadyCondition {
                        status: ConditionStatus::False,
                        last_transition: secs(500),
                    });
                }),
            ],
            100,
            4,
        ),
        // Past initialization, Ready=False since 10 s < start + 30 s: never ready ->
        // unready -> (100 + 0)/200 = 50 % -> keep 2.
        CalcCase::new(
            "pod that never became ready is unready",
            50,
            2,
            vec![
                pod(100),
                tweak(pod(100), |p| {
                    p.ready = Some(ReadyCondition {
                        status: ConditionStatus::False,
                        last_transition: secs(10),
                    });
                }),
            ],
            100,
            2,
        ),
        // No Ready condition, or no start time: unready. 100 % -> ratio 2; re-check
        // (100 + 0 + 0)/300 = 33 % -> 0.66 flips direction -> keep 3.
        CalcCase::new(
            "pod without a Ready condition or start time is unready",
            50,
            3,
            vec![
                pod(100),
                tweak(pod(300), |p| p.ready = None),
                tweak(pod(300), |p| p.start_time = None),
            ],
            100,
            3,
        ),
    ];

    let mut failures = Vec::new();
    for case in cases {
        let mut spec = legacy(1, 100, case.target);
        spec.behavior = case.behavior;
        let mut autoscaler = Autoscaler::new(spec, case.options);
        let decision = autoscaler.reconcile(NOW, case.current, &case.pods);
        let got = (
            decision.cpu_utilization_pct(),
            decision.recommended_replicas,
        );
        let want = (Some(case.utilization), Some(case.recommended));
        if got != want {
            failures.push(format!(
                "{}: (utilization, recommended) = {got:?}, want {want:?} [{}]",
                case.name, decision.explanation
            ));
        }
    }
    assert_no_failures("replica calculator", failures);
}

// ---------------------------------------------------------------------------------
// One reconcile: the applied count and the status conditions

struct DecisionCase {
    name: &'static str,
    spec: HpaSpec,
    current: u32,
    pods: Vec<PodInput>,
    desired: u32,
    /// (type, status, reason) that must be present.
    conditions: Vec<(&'static str, &'static str, &'static str)>,
    /// Substring of the `ScalingActive` message, where the message matters.
    active_message: Option<&'static str>,
}

#[test]
fn reconcile_decisions_and_conditions() {
    let cases = vec![
        DecisionCase {
            // Not clamped, no stabilization: 3 x 80 % -> 1.6 -> ceil(4.8) = 5 applied;
            // ScalingLimited=False/DesiredWithinRange.
            name: "unclamped scale-up",
            spec: legacy(1, 10, 50),
            current: 3,
            pods: pods(3, 80),
            desired: 5,
            conditions: vec![
                (ABLE_TO_SCALE, "True", "SucceededRescale"),
                (SCALING_ACTIVE, "True", "ValidMetricFound"),
                (SCALING_LIMITED, "False", "DesiredWithinRange"),
            ],
            active_message: Some("from cpu resource utilization (percentage of request)"),
        },
        DecisionCase {
            // Within tolerance (50 % of 50 %): nothing to do -> AbleToScale stays
            // ReadyForNewScale (no rescale overwrote it).
            name: "no change leaves AbleToScale at ReadyForNewScale",
            spec: legacy(1, 10, 50),
            current: 2,
            pods: pods(2, 50),
            desired: 2,
            conditions: vec![
                (ABLE_TO_SCALE, "True", "ReadyForNewScale"),
                (SCALING_LIMITED, "False", "DesiredWithinRange"),
            ],
            active_message: None,
        },
        DecisionCase {
            // Clamp at min: 3 idle pods -> ratio 0 -> 0; down window 0 and 100 % per
            // 15 s allow 0, minReplicas 2 wins -> 2, ScalingLimited=True/TooFewReplicas.
            name: "clamp at minReplicas",
            spec: with_behavior(legacy(2, 5, 50), |b| {
                b.scale_down.stabilization_window = Some(Duration::ZERO);
            }),
            current: 3,
            pods: pods(3, 0),
            desired: 2,
            conditions: vec![(SCALING_LIMITED, "True", "TooFewReplicas")],
            active_message: None,
        },
        DecisionCase {
            // currentReplicas == 0: autoscaling disabled, nothing computed.
            name: "zero replicas disables scaling",
            spec: legacy(1, 3, 50),
            current: 0,
            pods: vec![],
            desired: 0,
            conditions: vec![(SCALING_ACTIVE, "False", "ScalingDisabled")],
            active_message: Some(
                "scaling is disabled since the replica count of the target is zero",
            ),
        },
        DecisionCase {
            // Current above max: straight to max without looking at metrics.
            name: "current above maxReplicas is brought to max",
            spec: legacy(1, 3, 50),
            current: 5,
            pods: pods(5, 90),
            desired: 3,
            conditions: vec![(ABLE_TO_SCALE, "True", "SucceededRescale")],
            active_message: None,
        },
        DecisionCase {
            // Current below min: straight to min.
            name: "current below minReplicas is brought to min",
            spec: legacy(2, 3, 50),
            current: 1,
            pods: pods(1, 0),
            desired: 2,
            conditions: vec![(ABLE_TO_SCALE, "True", "SucceededRescale")],
            active_message: None,
        },
        DecisionCase {
            // No pod has a metric (fresh pods): FailedGetResourceMetric, keep current.
            name: "no metrics at all",
            spec: legacy(1, 3, 50),
            current: 2,
            pods: vec![missing(), pending()],
            desired: 2,
            conditions: vec![(SCALING_ACTIVE, "False", "FailedGetResourceMetric")],
            active_message: Some(
                "the HPA was unable to compute the replica count: failed to get cpu utilization: \
                 unable to get metrics for resource cpu: no metrics returned from resource metrics API",
            ),
        },
        DecisionCase {
            // Metrics only for pods that do not count (never ready).
            name: "metrics only for unready pods",
            spec: legacy(1, 3, 50),
            current: 1,
            pods: vec![tweak(pod(90), |p| p.ready = None)],
            desired: 1,
            conditions: vec![(SCALING_ACTIVE, "False", "FailedGetResourceMetric")],
            active_message: Some(
                "did not receive metrics for targeted pods (pods might be unready)",
            ),
        },
        DecisionCase {
            // Ready pods request no cpu: utilization undefined.
            name: "zero requests",
            spec: legacy(1, 3, 50),
            current: 1,
            pods: vec![tweak(pod(90), |p| {
                p.containers[0].cpu_request_millicores = Some(0);
            })],
            desired: 1,
            conditions: vec![(SCALING_ACTIVE, "False", "FailedGetResourceMetric")],
            active_message: Some("no metrics returned matched known pods"),
        },
    ];

    let mut failures = Vec::new();
    for case in cases {
        let mut autoscaler = Autoscaler::new(case.spec, ControllerOptions::default());
        let decision = autoscaler.reconcile(NOW, case.current, &case.pods);
        if decision.desired_replicas != case.desired {
            failures.push(format!(
                "{}: desired {} want {} [{}]",
                case.name, decision.desired_replicas, case.desired, decision.explanation
            ));
        }
        for (type_, status, reason) in case.conditions {
            if !has(&decision, type_, status, reason) {
                failures.push(format!(
                    "{}: missing {type_}={status}/{reason} in {:?}",
                    case.name, decision.conditions
                ));
            }
        }
        if let Some(expected) = case.active_message {
            let message = condition(&decision, SCALING_ACTIVE).map(|c| c.message.as_str());
            if !message.is_some_and(|m| m.contains(expected)) {
                failures.push(format!(
                    "{}: ScalingActive message {message:?} lacks {expected:?}",
                    case.name
                ));
            }
        }
    }
    assert_no_failures("reconcile", failures);
}

#[test]
fn conditions_keep_their_last_value_when_a_reconcile_does_not_touch_them() {
    // Upstream keeps status.conditions between reconciles: after a clamped scale-up,
    // a reconcile without metrics updates ScalingActive but leaves ScalingLimited.
    let mut autoscaler = Autoscaler::new(legacy(1, 3, 50), ControllerOptions::default());
    autoscaler.reconcile(NOW, 1, &[pod(200)]);
    let decision = autoscaler.reconcile(NOW + secs(15), 3, &[missing(), missing(), missing()]);
    assert!(has(
        &decision,
        SCALING_ACTIVE,
        "False",
        "FailedGetResourceMetric"
    ));
    assert!(has(&decision, SCALING_LIMITED, "True", "TooManyReplicas"));
    let types: Vec<&str> = decision
        .conditions
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(types, [ABLE_TO_SCALE, SCALING_ACTIVE, SCALING_LIMITED]);
}

// ---------------------------------------------------------------------------------
// Several reconciles: stabilization windows and rate limits

/// One reconcile at `t` seconds with `current` replicas, each pod using `usage_m` of
/// its 100m request, and the expected applied count. `limited` names the expected
/// `ScalingLimited` reason (its status follows: True unless `DesiredWithinRange`),
/// `able` the expected `AbleToScale` reason.
struct Step {
    t: u64,
    current: u32,
    usage_m: u64,
    desired: u32,
    able: Option<&'static str>,
    limited: Option<&'static str>,
}

const fn step(t: u64, current: u32, usage_m: u64, desired: u32) -> Step {
    Step {
        t,
        current,
        usage_m,
        desired,
        able: None,
        limited: None,
    }
}

impl Step {
    const fn able(mut self, reason: &'static str) -> Self {
        self.able = Some(reason);
        self
    }

    const fn limited(mut self, reason: &'static str) -> Self {
        self.limited = Some(reason);
        self
    }
}

struct Series {
    name: &'static str,
    spec: HpaSpec,
    options: ControllerOptions,
    steps: Vec<Step>,
}

fn series(name: &'static str, spec: HpaSpec, steps: Vec<Step>) -> Series {
    Series {
        name,
        spec,
        options: ControllerOptions::default(),
        steps,
    }
}

#[test]
fn stabilization_and_rate_limits_over_several_reconciles() {
    let spec = legacy(1, 10, 50);
    let no_down_window =
        |b: &mut Behavior| b.scale_down.stabilization_window = Some(Duration::ZERO);
    let cases = vec![
        // Legacy downscale stabilization (5 min, max of the window): the 4s recorded
        // at t=0 (initial + first proposal) hold later proposals of ceil(0.2 x 4) = 1
        // until they are older than 300 s: at t=300 they still count (not strictly
        // before the cutoff), at t=301 they do not.
        series(
            "legacy: scale-down waits for the 5 min window",
            spec.clone(),
            vec![
                step(0, 4, 50, 4).able("ReadyForNewScale"),
                step(15, 4, 10, 4).able("ScaleDownStabilized"),
                step(300, 4, 10, 4).able("ScaleDownStabilized"),
                step(301, 4, 10, 1).able("SucceededRescale"),
            ],
        ),
        // Legacy scale-up limit max(2 x current, 4): 500 % -> ratio 10 each time.
        // 1 -> want 10, limit 4; 4 -> want 40, limit 8; 8 -> want 80, limit 16;
        // 16 -> want 160, limit 32 >= max 20 -> TooManyReplicas.
        series(
            "legacy: scale-up limited to max(2 x current, 4)",
            legacy(1, 20, 50),
            vec![
                step(0, 1, 500, 4).limited("ScaleUpLimit"),
                step(15, 4, 500, 8).limited("ScaleUpLimit"),
                step(30, 8, 500, 16).limited("ScaleUpLimit"),
                step(45, 16, 500, 20).limited("TooManyReplicas"),
            ],
        ),
        // Scale-up window 60 s takes the MIN: at t=15 the proposal 6 (150 % -> 3 x 2)
        // is held at min(6, 2, 2) = 2; at t=61 the 2s from t=0 left the window,
        // min(6, 6) = 6; limit max(2 + 4, ceil(2 x 2)) = 6 -> 6.
        series(
            "behavior: scale-up stabilization takes the lowest recommendation",
            with_behavior(spec.clone(), |b| {
                b.scale_up.stabilization_window = Some(secs(60));
            }),
            vec![
                step(0, 2, 50, 2).able("ReadyForNewScale"),
                step(15, 2, 150, 2).able("ScaleUpStabilized"),
                step(61, 2, 150, 6).limited("DesiredWithinRange"),
            ],
        ),
        // Scale-down window 60 s takes the MAX, then Percent 50 / 15 s limits
        // (k8s/hpa.yaml's scaleDown): t=15 proposal 1 held at max(1, 4, 4) = 4; t=30
        // proposal ceil(0.4 x 4) = 2 held at 4; t=61 window holds {1, 2, 2} -> 2;
        // limit trunc(4 x 0.5) = 2 -> 2.
        series(
            "behavior: scale-down stabilization takes the highest recommendation",
            with_behavior(spec.clone(), |b| {
                b.scale_down.stabilization_window = Some(secs(60));
                b.scale_down.policies = vec![policy(PolicyKind::Percent, 50, 15)];
            }),
            vec![
                step(0, 4, 50, 4),
                step(15, 4, 10, 4).able("ScaleDownStabilized"),
                step(30, 4, 20, 4).able("ScaleDownStabilized"),
                step(61, 4, 20, 2).limited("DesiredWithinRange"),
            ],
        ),
        // Scale-down without a window in behavior uses the controller flag (here set
        // to 60 s): held at 4 while the t=0 samples are in the window; unlike the legacy
        // path a sample exactly at the cutoff no longer counts, so t=60 scales to 1.
        Series {
            options: ControllerOptions {
                downscale_stabilization_window: secs(60),
                ..ControllerOptions::default()
            },
            ..series(
                "behavior: unset scale-down window is the controller's",
                with_behavior(spec.clone(), |_| {}),
                vec![
                    step(0, 4, 50, 4),
                    step(15, 4, 10, 4).able("ScaleDownStabilized"),
                    step(59, 4, 10, 4).able("ScaleDownStabilized"),
                    step(60, 4, 10, 1),
                ],
            )
        },
        // Percent policy rounds up on scale-up: 50 % of 3 = ceil(4.5) = 5 (want 30).
        series(
            "behavior: percent scale-up limit rounds up",
            with_behavior(spec.clone(), |b| {
                b.scale_up.policies = vec![policy(PolicyKind::Percent, 50, 60)];
            }),
            vec![step(0, 3, 500, 5).limited("ScaleUpLimit")],
        ),
        // Percent policy truncates on scale-down: 5 x (1 - 0.5) = 2.5 -> 2 (want 0).
        series(
            "behavior: percent scale-down limit truncates",
            with_behavior(spec.clone(), |b| {
                no_down_window(b);
                b.scale_down.policies = vec![policy(PolicyKind::Percent, 50, 60)];
            }),
            vec![step(0, 5, 0, 2).limited("ScaleDownLimit")],
        ),
        // Pods 1 / 60 s: t=0 1 -> 2 (limit 1 + 1); t=15 the event of +1 is in the
        // period, start = 2 - 1 = 1, limit 2 = current -> stays 2, still limited;
        // t=61 the event left the period, limit 2 + 1 = 3.
        series(
            "behavior: scale events within the period use up the budget",
            with_behavior(spec.clone(), |b| {
                b.scale_up.policies = vec![policy(PolicyKind::Pods, 1, 60)];
            }),
            vec![
                step(0, 1, 500, 2).limited("ScaleUpLimit"),
                step(15, 2, 500, 2).limited("ScaleUpLimit"),
                step(61, 2, 500, 3).limited("ScaleUpLimit"),
            ],
        ),
        // The period start also adds back scale-downs: t=0 4 -> 1 (idle, window 0,
        // 100 % per 15 s; min 1); t=15 busy: start = 1 - 0 + 3 = 4, Pods 2 -> 6.
        series(
            "behavior: scale-downs within the period raise the scale-up base",
            with_behavior(spec.clone(), |b| {
                no_down_window(b);
                b.scale_up.policies = vec![policy(PolicyKind::Pods, 2, 60)];
            }),
            vec![
                step(0, 4, 0, 1),
                step(15, 1, 500, 6).limited("ScaleUpLimit"),
            ],
        ),
        // selectPolicy Min picks the smaller limit: want 20 (500 % x 2 pods);
        // Pods 4 -> 6, Percent 100 -> 4; Min -> 4 (Max would allow 6).
        series(
            "behavior: selectPolicy Min",
            with_behavior(spec.clone(), |b| {
                b.scale_up.select_policy = SelectPolicy::Min;
            }),
            vec![step(0, 2, 500, 4).limited("ScaleUpLimit")],
        ),
        // selectPolicy Max (default) picks the larger limit of the same policies: 6.
        series(
            "behavior: selectPolicy Max",
            with_behavior(spec.clone(), |_| {}),
            vec![step(0, 2, 500, 6).limited("ScaleUpLimit")],
        ),
        // selectPolicy Disabled on scale-down: limit = current -> idle pods keep 4.
        series(
            "behavior: selectPolicy Disabled blocks scale-down",
            with_behavior(spec.clone(), |b| {
                no_down_window(b);
                b.scale_down.select_policy = SelectPolicy::Disabled;
            }),
            vec![step(0, 4, 0, 4).limited("ScaleDownLimit")],
        ),
        // selectPolicy Disabled on scale-up: busy pods keep 2.
        series(
            "behavior: selectPolicy Disabled blocks scale-up",
            with_behavior(spec.clone(), |b| {
                b.scale_up.select_policy = SelectPolicy::Disabled;
            }),
            vec![step(0, 2, 500, 2).limited("ScaleUpLimit")],
        ),
    ];

    let mut failures = Vec::new();
    for case in cases {
        let mut autoscaler = Autoscaler::new(case.spec, case.options);
        for step in case.steps {
            let decision = autoscaler.reconcile(
                NOW + secs(step.t),
                step.current,
                &pods(step.current as usize, step.usage_m),
            );
            let at = format!("{} @ t={}", case.name, step.t);
            if decision.desired_replicas != step.desired {
                failures.push(format!(
                    "{at}: desired {} want {} [{}]",
                    decision.desired_replicas, step.desired, decision.explanation
                ));
            }
            if let Some(reason) = step.able
                && !has(&decision, ABLE_TO_SCALE, "True", reason)
            {
                failures.push(format!(
                    "{at}: want AbleToScale/{reason}: {:?}",
                    decision.conditions
                ));
            }
            if let Some(reason) = step.limited {
                let status = if reason == "DesiredWithinRange" {
                    "False"
                } else {
                    "True"
                };
                if !has(&decision, SCALING_LIMITED, status, reason) {
                    failures.push(format!(
                        "{at}: want ScalingLimited={status}/{reason}: {:?}",
                        decision.conditions
                    ));
                }
            }
        }
    }
    assert_no_failures("series", failures);
}

// ---------------------------------------------------------------------------------
// Spec conversion

fn repo_hpa_yaml() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../k8s/hpa.yaml");
    std::fs::read_to_string(path).expect("k8s/hpa.yaml is readable")
}

#[test]
fn repository_hpa_yaml_converts_to_the_expected_spec() {
    let spec = HpaSpec::from_yaml(&repo_hpa_yaml()).expect("k8s/hpa.yaml converts");
    let expected = HpaSpec {
        min_replicas: 1,
        max_replicas: 3,
        metrics: vec![cpu_utilization(50)],
        behavior: Some(Behavior {
            scale_up: ScalingRules {
                stabilization_window: Some(Duration::ZERO),
                select_policy: SelectPolicy::Max,
                policies: vec![
                    policy(PolicyKind::Percent, 100, 15),
                    policy(PolicyKind::Pods, 2, 15),
                ],
                tolerance: None,
            },
            scale_down: ScalingRules {
                stabilization_window: Some(secs(60)),
                // Not in the file: the API server's default.
                select_policy: SelectPolicy::Max,
                policies: vec![policy(PolicyKind::Percent, 50, 15)],
                tolerance: None,
            },
        }),
    };
    assert_eq!(spec, expected);
}

/// An HPA manifest with `spec_body` (indented by 2 spaces) under `spec:`.
fn hpa_yaml(spec_body: &str) -> String {
    let mut yaml = String::from(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: t\nspec:\n  \
         scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: t\n",
    );
    for line in spec_body.lines() {
        yaml.push_str("  ");
        yaml.push_str(line);
        yaml.push('\n');
    }
    yaml
}

const CPU_50: &str = "metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
";

#[test]
fn spec_conversion_applies_api_server_defaults() {
    let base = legacy(1, 5, 50);
    let cases: Vec<(&str, String, HpaSpec)> = vec![
        // minReplicas defaults to 1; no behavior -> legacy path.
        (
            "minReplicas defaults to 1",
            format!("maxReplicas: 5\n{CPU_50}"),
            base.clone(),
        ),
        // No metrics -> the API server's default: cpu at 80 %.
        (
            "no metrics means cpu at 80 %",
            "maxReplicas: 5".to_owned(),
            legacy(1, 5, 80),
        ),
        // behavior with only scaleDown policies: scaleUp all defaults, scaleDown
        // selectPolicy Max and window left to the controller.
        (
            "absent direction and fields take defaults",
            format!(
                "maxReplicas: 5\n{CPU_50}behavior:\n  scaleDown:\n    policies:\n      \
                 - {{type: Pods, value: 1, periodSeconds: 60}}\n"
            ),
            with_behavior(base.clone(), |b| {
                b.scale_down.policies = vec![policy(PolicyKind::Pods, 1, 60)];
            }),
        ),
        // scaleUp with only a window keeps the default policies.
        (
            "scale-up window alone keeps default policies",
            format!(
                "maxReplicas: 5\n{CPU_50}behavior:\n  scaleUp:\n    stabilizationWindowSeconds: 30\n"
            ),
            with_behavior(base.clone(), |b| {
                b.scale_up.stabilization_window = Some(secs(30));
            }),
        ),
        // Tolerances as quantities: 50m = 0.05, 0.2 = 0.2.
        (
            "per-direction tolerances",
            format!(
                "maxReplicas: 5\n{CPU_50}behavior:\n  scaleUp: {{tolerance: 50m}}\n  \
                 scaleDown: {{tolerance: \"0.2\", selectPolicy: Disabled}}\n"
            ),
            with_behavior(base.clone(), |b| {
                b.scale_up.tolerance = Some(0.05);
                b.scale_down.tolerance = Some(0.2);
                b.scale_down.select_policy = SelectPolicy::Disabled;
            }),
        ),
    ];
    let mut failures = Vec::new();
    for (name, body, expected) in cases {
        match HpaSpec::from_yaml(&hpa_yaml(&body)) {
            Ok(spec) if spec == expected => {}
            other => failures.push(format!("{name}: got {other:?}, want {expected:?}")),
        }
    }
    assert_no_failures("spec defaults", failures);
}

#[test]
fn spec_conversion_reads_resource_and_container_resource_metrics() {
    let memory = |target| MetricSpec::resource(ResourceName::Memory, target);
    let with_metrics = |metrics: Vec<MetricSpec>| HpaSpec {
        metrics,
        ..legacy(1, 3, 50)
    };
    let cases: Vec<(&str, String, HpaSpec)> = vec![
        (
            "ContainerResource cpu Utilization",
            metric(
                "type: ContainerResource\n    containerResource: {name: cpu, container: app, \
                 target: {type: Utilization, averageUtilization: 60}}",
            ),
            with_metrics(vec![MetricSpec::container_resource(
                ResourceName::Cpu,
                "app",
                MetricTarget::Utilization(60),
            )]),
        ),
        (
            "memory Utilization",
            metric(
                "type: Resource\n    resource: {name: memory, target: {type: Utilization, \
                 averageUtilization: 70}}",
            ),
            with_metrics(vec![memory(MetricTarget::Utilization(70))]),
        ),
        // 100Mi = 104857600 bytes; AverageValue targets are milli-values.
        (
            "memory AverageValue in binary units",
            metric(
                "type: Resource\n    resource: {name: memory, target: {type: AverageValue, \
                 averageValue: 100Mi}}",
            ),
            with_metrics(vec![memory(MetricTarget::memory_bytes(104_857_600))]),
        ),
        (
            "cpu AverageValue in millicores",
            metric(
                "type: Resource\n    resource: {name: cpu, target: {type: AverageValue, \
                 averageValue: 250m}}",
            ),
            with_metrics(vec![MetricSpec::resource(
                ResourceName::Cpu,
                MetricTarget::cpu_millicores(250),
            )]),
        ),
        // Several metrics keep their order; duplicates are allowed, as upstream.
        (
            "cpu and memory together",
            format!(
                "maxReplicas: 3\n{CPU_50}  - type: Resource\n    resource: {{name: memory, \
                 target: {{type: AverageValue, averageValue: 1Gi}}}}\n{}",
                &CPU_50["metrics:\n".len()..]
            ),
            with_metrics(vec![
                cpu_utilization(50),
                memory(MetricTarget::memory_bytes(1 << 30)),
                cpu_utilization(50),
            ]),
        ),
    ];
    let mut failures = Vec::new();
    for (name, body, expected) in cases {
        match HpaSpec::from_yaml(&hpa_yaml(&body)) {
            Ok(spec) if spec == expected => {}
            other => failures.push(format!("{name}: got {other:?}, want {expected:?}")),
        }
    }
    assert_no_failures("spec metrics", failures);
}

fn metric(type_and_source: &str) -> String {
    format!("maxReplicas: 3\nmetrics:\n  - {type_and_source}\n")
}

#[test]
fn spec_conversion_rejects_what_the_port_cannot_follow() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "Pods metric",
            metric(
                "type: Pods\n    pods: {metric: {name: rps}, target: {type: AverageValue, averageValue: \"10\"}}",
            ),
            "Pods, Object and External metrics are out of scope",
        ),
        (
            "Object metric",
            metric(
                "type: Object\n    object: {metric: {name: q}, describedObject: {kind: Service, name: s}, \
                 target: {type: Value, value: \"1\"}}",
            ),
            "unsupported metric type \"Object\"",
        ),
        (
            "External metric",
            metric(
                "type: External\n    external: {metric: {name: q}, target: {type: Value, value: \"1\"}}",
            ),
            "unsupported metric type \"External\"",
        ),
        (
            "Value target on a resource metric",
            metric(
                "type: Resource\n    resource: {name: cpu, target: {type: Value, value: \"1\"}}",
            ),
            "unsupported target type \"Value\"",
        ),
        (
            "resource other than cpu and memory",
            metric(
                "type: Resource\n    resource: {name: ephemeral-storage, target: {type: Utilization, \
                 averageUtilization: 50}}",
            ),
            "unsupported resource \"ephemeral-storage\"",
        ),
        (
            "both averageUtilization and averageValue",
            metric(
                "type: Resource\n    resource: {name: memory, target: {type: Utilization, \
                 averageUtilization: 50, averageValue: 100Mi}}",
            ),
            "invalid spec.metrics[0].resource.target: may not set both",
        ),
        (
            "AverageValue that is not a quantity",
            metric(
                "type: Resource\n    resource: {name: memory, target: {type: AverageValue, \
                 averageValue: lots}}",
            ),
            "invalid spec.metrics[0].resource.target.averageValue",
        ),
        (
            "ContainerResource without a container",
            metric(
                "type: ContainerResource\n    containerResource: {name: cpu, container: \"\", \
                 target: {type: Utilization, averageUtilization: 50}}",
            ),
            "invalid spec.metrics[0].containerResource.container",
        ),
        (
            "an unsupported metric after a supported one",
            format!(
                "maxReplicas: 3\n{CPU_50}  - type: Pods\n    pods: {{metric: {{name: rps}}, \
                 target: {{type: AverageValue, averageValue: \"10\"}}}}\n"
            ),
            "unsupported metric type \"Pods\"",
        ),
        (
            "unknown selectPolicy",
            format!("maxReplicas: 3\n{CPU_50}behavior:\n  scaleUp: {{selectPolicy: Sometimes}}\n"),
            "invalid spec.behavior.scaleUp.selectPolicy",
        ),
        (
            "empty policy list",
            format!("maxReplicas: 3\n{CPU_50}behavior:\n  scaleDown: {{policies: []}}\n"),
            "invalid spec.behavior.scaleDown.policies",
        ),
        (
            "minReplicas 0",
            format!("minReplicas: 0\nmaxReplicas: 3\n{CPU_50}"),
            "invalid spec.minReplicas",
        ),
        (
            "maxReplicas below minReplicas",
            format!("minReplicas: 4\nmaxReplicas: 3\n{CPU_50}"),
            "invalid spec.maxReplicas",
        ),
        (
            "tolerance with a binary suffix",
            format!("maxReplicas: 3\n{CPU_50}behavior:\n  scaleUp: {{tolerance: 1Ki}}\n"),
            "invalid spec.behavior.scaleUp.tolerance",
        ),
    ];
    let mut failures = Vec::new();
    for (name, body, expected) in cases {
        match HpaSpec::from_yaml(&hpa_yaml(&body)) {
            Err(err) if err.to_string().contains(expected) => {}
            other => failures.push(format!(
                "{name}: got {other:?}, want error containing {expected:?}"
            )),
        }
    }
    assert_no_failures("spec errors", failures);
}

// ---------------------------------------------------------------------------------
// Metrics beyond one cpu utilization: memory, AverageValue, ContainerResource, several
// metrics in one HPA, missing requests. Hand-computed like the tables above.

const MI: u64 = 1024 * 1024;

/// One container of [`web_pod`]: (name, cpu request m, memory request Mi, cpu usage m,
/// memory usage Mi). `None` requests are missing requests.
type Ctr = (&'static str, Option<u64>, Option<u64>, u64, u64);

/// A running, ready, initialized pod named `name` with the given containers.
fn web_pod(name: &str, containers: &[Ctr]) -> PodInput {
    PodInput {
        name: name.to_owned(),
        containers: containers
            .iter()
            .map(|&(c, cpu, mem, _, _)| ContainerInput {
                name: c.to_owned(),
                cpu_request_millicores: cpu,
                memory_request_bytes: mem.map(|m| m * MI),
            })
            .collect(),
        metrics: Some(PodMetrics {
            timestamp: secs(25),
            window: secs(15),
            containers: containers
                .iter()
                .map(|&(c, _, _, cpu, mem)| ContainerUsage {
                    name: c.to_owned(),
                    cpu_millicores: Some(cpu),
                    memory_bytes: Some(mem * MI),
                })
                .collect(),
        }),
        ..pod(0)
    }
}

/// A pod with one container `app` requesting 100m cpu and 100Mi memory.
fn app_pod(name: &str, cpu_m: u64, mem_mi: u64) -> PodInput {
    web_pod(name, &[("app", Some(100), Some(100), cpu_m, mem_mi)])
}

fn memory(target: MetricTarget) -> MetricSpec {
    MetricSpec::resource(ResourceName::Memory, target)
}

fn with_metrics(min: u32, max: u32, metrics: Vec<MetricSpec>) -> HpaSpec {
    HpaSpec {
        metrics,
        ..legacy(min, max, 50)
    }
}

fn reconcile_once(spec: HpaSpec, current: u32, pods: &[PodInput]) -> Decision {
    Autoscaler::new(spec, ControllerOptions::default()).reconcile(NOW, current, pods)
}

fn active(decision: &Decision) -> &Condition {
    condition(decision, SCALING_ACTIVE).expect("ScalingActive is set")
}

#[test]
fn memory_utilization_ignores_the_cpu_readiness_rules() {
    // 150Mi used of 100Mi requested = 150 % vs target 75 % -> ratio 2 over both pods,
    // including the fresh one whose sample overlaps its readiness change (only cpu
    // samples are distrusted): ceil(2 x 2) = 4.
    let fresh_pod = tweak(app_pod("b", 100, 150), |p| {
        p.start_time = Some(secs(900));
        p.ready = Some(ReadyCondition {
            status: ConditionStatus::True,
            last_transition: secs(950),
        });
        if let Some(m) = &mut p.metrics {
            m.timestamp = secs(960);
        }
    });
    let spec = with_metrics(1, 10, vec![memory(MetricTarget::Utilization(75))]);
    let decision = reconcile_once(spec, 2, &[app_pod("a", 100, 150), fresh_pod.clone()]);
    assert_eq!(
        decision.recommended_replicas,
        Some(4),
        "{}",
        decision.explanation
    );
    let value = decision.metrics[0].current.expect("memory measured");
    assert_eq!(value.average_utilization, Some(150));
    // (150Mi + 150Mi)/2 = 157286400 bytes.
    assert_eq!(value.average_value(), "157286400");

    // The same pods on a cpu target: 100 % vs 50 %, the fresh pod is unready ->
    // (100 + 0)/200 = 50 % -> ratio 1.0 -> keep 2.
    let decision = reconcile_once(legacy(1, 10, 50), 2, &[app_pod("a", 100, 150), fresh_pod]);
    assert_eq!(
        decision.recommended_replicas,
        Some(2),
        "{}",
        decision.explanation
    );
}

#[test]
fn average_value_targets() {
    // memory: (120 + 150 + 180)/3 = 150Mi vs 100Mi -> ratio 1.5; ceil(1.5 x 3) = 5.
    // Requests play no part: the pods request no memory at all.
    let pods: Vec<PodInput> = [120, 150, 180]
        .iter()
        .map(|&mi| web_pod("p", &[("app", Some(100), None, 50, mi)]))
        .collect();
    let spec = with_metrics(1, 10, vec![memory(MetricTarget::memory_bytes(100 * MI))]);
    let decision = reconcile_once(spec, 3, &pods);
    assert_eq!(
        decision.recommended_replicas,
        Some(5),
        "{}",
        decision.explanation
    );
    assert_eq!(decision.desired_replicas, 5);
    let status = &decision.metrics[0];
    assert_eq!(status.current.and_then(|v| v.average_utilization), None);
    assert_eq!(
        status.current.map(|v| v.average_value()).as_deref(),
        Some("157286400")
    );
    assert_eq!(
        decision.rescale_reason.as_deref(),
        Some("memory resource above target")
    );

    // cpu: 4 pods at 50m and one without metrics vs 100m -> ratio 0.5 (scale-down);
    // the missing pod is assumed at the target: (200 + 100)/5 = 60m -> 0.6;
    // ceil(0.6 x 5) = 3.
    let mut pods: Vec<PodInput> = (0..4).map(|_| app_pod("p", 50, 10)).collect();
    pods.push(tweak(app_pod("q", 0, 0), |p| p.metrics = None));
    let spec = with_metrics(
        1,
        10,
        vec![MetricSpec::resource(
            ResourceName::Cpu,
            MetricTarget::cpu_millicores(100),
        )],
    );
    let decision = reconcile_once(spec, 5, &pods);
    assert_eq!(
        decision.recommended_replicas,
        Some(3),
        "{}",
        decision.explanation
    );
    assert_eq!(
        decision.metrics[0]
            .current
            .map(|v| v.average_value())
            .as_deref(),
        Some("50m")
    );
}

#[test]
fn missing_requests_stop_utilization_but_not_average_value() {
    // The sidecar requests no cpu: upstream refuses to compute a utilization and keeps
    // the count, with the container and pod named.
    let pods = [web_pod(
        "web-0",
        &[
            ("app", Some(100), Some(100), 300, 50),
            ("sidecar", None, Some(10), 10, 5),
        ],
    )];
    let decision = reconcile_once(legacy(1, 10, 50), 1, &pods);
    assert_eq!(decision.desired_replicas, 1);
    assert_eq!(decision.recommended_replicas, None);
    assert!(has(
        &decision,
        SCALING_ACTIVE,
        "False",
        "FailedGetResourceMetric"
    ));
    assert_eq!(
        active(&decision).message,
        "the HPA was unable to compute the replica count: failed to get cpu utilization: \
         missing request for cpu in container sidecar of Pod web-0"
    );
    assert_eq!(decision.metrics[0].current, None);
    assert_eq!(decision.metrics[0].to_k8s().type_, "");

    // Requests are read for every listed pod, even one being deleted.
    let deleted = tweak(web_pod("web-1", &[("app", None, None, 0, 0)]), |p| {
        p.deleted = true;
    });
    let decision = reconcile_once(legacy(1, 10, 50), 1, &[app_pod("web-0", 300, 50), deleted]);
    assert!(
        active(&decision)
            .message
            .ends_with("missing request for cpu in container app of Pod web-1"),
        "{:?}",
        active(&decision)
    );

    // An AverageValue target needs no request: (300 + 10)m vs 100m -> ratio 3.1 -> 4.
    let spec = with_metrics(
        1,
        10,
        vec![MetricSpec::resource(
            ResourceName::Cpu,
            MetricTarget::cpu_millicores(100),
        )],
    );
    let decision = reconcile_once(spec, 1, &pods);
    assert_eq!(
        decision.recommended_replicas,
        Some(4),
        "{}",
        decision.explanation
    );
}

#[test]
fn container_resource_metrics_use_one_container() {
    // app: 200m of 100m = 200 % vs 50 % -> ratio 4 -> 4; the pod as a whole would be
    // (200 + 0)/(100 + 100) = 100 % -> 2.
    let pods = [web_pod(
        "web-0",
        &[
            ("app", Some(100), Some(100), 200, 10),
            ("sidecar", Some(100), Some(100), 0, 10),
        ],
    )];
    let container =
        MetricSpec::container_resource(ResourceName::Cpu, "app", MetricTarget::Utilization(50));
    let decision = reconcile_once(with_metrics(1, 10, vec![container.clone()]), 1, &pods);
    assert_eq!(
        decision.recommended_replicas,
        Some(4),
        "{}",
        decision.explanation
    );
    assert!(
        active(&decision)
            .message
            .ends_with("from cpu container resource utilization (percentage of request)")
    );
    let status = decision.metrics[0].to_k8s();
    assert_eq!(status.type_, "ContainerResource");
    let current = status.container_resource.expect("containerResource set");
    assert_eq!(
        (current.name.as_str(), current.container.as_str()),
        ("cpu", "app")
    );
    assert_eq!(current.current.average_utilization, Some(200));
    assert_eq!(
        current.current.average_value.map(|q| q.0).as_deref(),
        Some("200m")
    );
    let decision = reconcile_once(legacy(1, 10, 50), 1, &pods);
    assert_eq!(decision.recommended_replicas, Some(2));

    // A container the pod spec lacks, and one the sample lacks.
    let other =
        MetricSpec::container_resource(ResourceName::Cpu, "worker", MetricTarget::Utilization(50));
    let decision = reconcile_once(with_metrics(1, 10, vec![other]), 1, &pods);
    assert!(has(
        &decision,
        SCALING_ACTIVE,
        "False",
        "FailedGetContainerResourceMetric"
    ));
    // Since kubernetes PR #127193 a sample without the container is a pod without a
    // metric; with no pod left that has one, the HPA says so.
    assert!(
        active(&decision).message.ends_with(
            "failed to get cpu utilization: did not receive metrics for targeted pods (pods \
             might be unready)"
        ),
        "{:?}",
        active(&decision)
    );
    let no_spec = tweak(pods[0].clone(), |p| p.containers.truncate(1));
    let sidecar =
        MetricSpec::container_resource(ResourceName::Cpu, "sidecar", MetricTarget::Utilization(50));
    let decision = reconcile_once(with_metrics(1, 10, vec![sidecar]), 1, &[no_spec]);
    assert!(
        active(&decision)
            .message
            .ends_with("container sidecar not found in Pod web-0"),
        "{:?}",
        active(&decision)
    );
}

#[test]
fn several_metrics_follow_the_highest_proposal() {
    // cpu: 60 % vs 50 % -> ratio 1.2 -> ceil(2.4) = 3; memory: 150 % vs 50 % -> ratio 3
    // -> 6. The highest, memory's 6, drives the decision; the legacy scale-up limit
    // max(2 x 2, 4) = 4 caps it (the event reason still names memory, as upstream
    // words it from the proposal).
    let pods = [app_pod("a", 60, 150), app_pod("b", 60, 150)];
    let spec = with_metrics(
        1,
        10,
        vec![cpu_utilization(50), memory(MetricTarget::Utilization(50))],
    );
    let decision = reconcile_once(spec, 2, &pods);
    assert_eq!(
        decision.recommended_replicas,
        Some(6),
        "{}",
        decision.explanation
    );
    assert_eq!(decision.desired_replicas, 4, "{}", decision.explanation);
    assert!(has(&decision, SCALING_LIMITED, "True", "ScaleUpLimit"));
    assert_eq!(decision.driving_metric, Some(1));
    assert_eq!(
        decision.driving().map(|m| m.spec.resource),
        Some(ResourceName::Memory)
    );
    let proposals: Vec<_> = decision
        .metrics
        .iter()
        .map(|m| m.proposed_replicas)
        .collect();
    assert_eq!(proposals, [Some(3), Some(6)]);
    assert_eq!(decision.cpu_utilization_pct(), Some(60));
    assert_eq!(
        active(&decision).message,
        "the HPA was able to successfully calculate a replica count from memory resource \
         utilization (percentage of request)"
    );
    assert_eq!(
        decision.rescale_reason.as_deref(),
        Some("memory resource utilization (percentage of request) above target")
    );
    assert!(
        decision.explanation.contains("cpu 60% of request")
            && decision.explanation.contains("memory 150% of request")
            && decision
                .explanation
                .contains("the highest proposal, 6, comes from memory")
            && decision
                .explanation
                .ends_with("limited to 4 (ScaleUpLimit): scaling 2 -> 4"),
        "{}",
        decision.explanation
    );
    let shapes: Vec<(String, Option<i32>, Option<String>)> = decision
        .current_metrics()
        .into_iter()
        .map(|m| {
            let current = m.resource.expect("Resource status").current;
            (
                m.type_,
                current.average_utilization,
                current.average_value.map(|q| q.0),
            )
        })
        .collect();
    assert_eq!(
        shapes,
        [
            ("Resource".to_owned(), Some(60), Some("60m".to_owned())),
            (
                "Resource".to_owned(),
                Some(150),
                Some("157286400".to_owned())
            ),
        ]
    );
}

#[test]
fn failed_metrics_follow_upstream_rules() {
    // memory has no request: that metric fails in every case below.
    let pod = |cpu| web_pod("web-0", &[("app", Some(100), None, cpu, 50)]);
    let spec = || {
        with_metrics(
            1,
            10,
            vec![cpu_utilization(50), memory(MetricTarget::Utilization(50))],
        )
    };

    // cpu wants more (150 % -> ratio 3 -> 3): scale on the valid metric.
    let decision = reconcile_once(spec(), 1, &[pod(150)]);
    assert_eq!(decision.desired_replicas, 3, "{}", decision.explanation);
    assert!(has(&decision, SCALING_ACTIVE, "True", "ValidMetricFound"));
    assert_eq!(decision.driving_metric, Some(0));
    assert!(decision.metrics[1].error.is_some());

    // cpu wants fewer (10 % -> 1 of 2 pods): a failed metric blocks the scale-down.
    let decision = reconcile_once(spec(), 2, &[pod(10), pod(10)]);
    assert_eq!(decision.desired_replicas, 2, "{}", decision.explanation);
    assert_eq!(decision.recommended_replicas, None);
    assert_eq!(decision.driving_metric, None);
    assert!(has(
        &decision,
        SCALING_ACTIVE,
        "False",
        "FailedGetResourceMetric"
    ));
    assert!(active(&decision).message.ends_with(
        "failed to get memory utilization: missing request for memory in container app of \
         Pod web-0"
    ));
    // The valid metric's value is still reported.
    assert_eq!(decision.cpu_utilization_pct(), Some(10));
    assert_eq!(decision.metrics[1].current, None);
    assert!(decision.explanation.contains("memory: no usable metric"));

    // cpu wants the same count: no change, and upstream calls the metrics valid.
    let decision = reconcile_once(spec(), 2, &[pod(50), pod(50)]);
    assert_eq!(decision.desired_replicas, 2);
    assert!(has(&decision, SCALING_ACTIVE, "True", "ValidMetricFound"));

    // Both fail: the first failure names the condition.
    let no_metrics = tweak(pod(0), |p| p.metrics = None);
    let decision = reconcile_once(spec(), 1, &[no_metrics]);
    assert!(active(&decision).message.ends_with(
        "failed to get cpu utilization: unable to get metrics for resource cpu: no metrics \
         returned from resource metrics API"
    ));
}

#[test]
fn proposals_of_zero_name_the_last_metric_like_upstream() {
    // Both idle -> both propose 0. Upstream replaces a running maximum of 0 with any
    // later proposal, so memory (the second) is named; minReplicas lifts the count.
    let pods = [app_pod("a", 0, 0), app_pod("b", 0, 0)];
    let spec = with_metrics(
        1,
        10,
        vec![cpu_utilization(50), memory(MetricTarget::Utilization(50))],
    );
    let mut autoscaler = Autoscaler::new(
        HpaSpec {
            behavior: Some(Behavior {
                scale_down: ScalingRules {
                    stabilization_window: Some(Duration::ZERO),
                    ..ScalingRules::default_scale_down()
                },
                ..default_behavior()
            }),
            ..spec
        },
        ControllerOptions::default(),
    );
    let decision = autoscaler.reconcile(NOW, 2, &pods);
    assert_eq!(decision.recommended_replicas, Some(0));
    assert_eq!(decision.driving_metric, Some(1));
    assert_eq!(decision.desired_replicas, 1);
    assert_eq!(
        decision.rescale_reason.as_deref(),
        Some("All metrics below target")
    );
}

#[test]
fn clamping_to_min_or_max_reports_no_metrics_and_upstreams_reason() {
    let decision = reconcile_once(legacy(1, 3, 50), 5, &pods(5, 90));
    assert!(decision.metrics.is_empty());
    assert_eq!(
        decision.rescale_reason.as_deref(),
        Some("Current number of replicas above Spec.MaxReplicas")
    );
    let decision = reconcile_once(legacy(2, 3, 50), 1, &pods(1, 0));
    assert_eq!(
        decision.rescale_reason.as_deref(),
        Some("Current number of replicas below Spec.MinReplicas")
    );
    // No rescale, no reason.
    let decision = reconcile_once(legacy(1, 10, 50), 2, &pods(2, 50));
    assert_eq!(decision.rescale_reason, None);
}
