use std::collections::BTreeMap;

use super::*;
use crate::fixtures::{load, timeline, too_many_replicas};
use crate::gate::GateError;
use crate::scenario::BaselineMargins;
use crate::verdict::{self, ReplicaBounds, Verdict};

fn verdict(check: &str, outcome: verdict::Outcome) -> VerdictReport {
    VerdictReport::from(&Verdict {
        check: check.into(),
        expected: format!("{check} holds"),
        measured: format!("{check} measured <&> value"),
        outcome,
    })
}

use verdict::Outcome as V;

/// A scenario as the gate reports it: built from the harness's own types through
/// the same conversions, so these tests cover them too.
fn scenario(name: &str, outcomes: &[V]) -> ScenarioReport {
    let mut tl = timeline(&[
        (0.0, 1, 1, Some(180)),
        (1.0, 3, 1, Some(200)),
        (3.0, 3, 3, Some(90)),
    ]);
    tl.samples[1].conditions.push(too_many_replicas());
    tl.event(1.0, "scaled 1 -> 3: cpu above target");
    ScenarioReport {
        name: name.into(),
        description: format!("{name} | described"),
        bounds: ReplicaBounds { min: 1, max: 3 }.into(),
        duration_s: 4.0,
        reset_s: None,
        namespace: None,
        lane: None,
        hpa: None,
        load: Some(LoadReport::from(&load(300, 297, &[80, 100, 120], 42.0))),
        first_scale_up_s: tl.first_scale_up_s(),
        back_to_min_s: None,
        load_started_at: None,
        phases: None,
        timeline: TimelineReport::from(&tl),
        verdicts: outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| verdict(&format!("check{i}"), *o))
            .collect(),
        error: None,
    }
}

fn report(scenarios: Vec<ScenarioReport>) -> Report {
    Report {
        schema_version: SCHEMA_VERSION,
        run: RunMeta {
            backend: Some(crate::backend::BackendKind::Local),
            git_sha: Some("abc1234".into()),
            started_at: "2026-11-28T03:00:00Z".into(),
            ended_at: "2026-11-28T03:05:00Z".into(),
            config: "stress.toml".into(),
            tool_versions: BTreeMap::from([("scaleproof".into(), "0.1.0".into())]),
            cpu_limit: Some("cgroup v1, 200m per replica".into()),
            memory_limit: None,
            pod_network: None,
            local_timing: Some(LocalTimingReport::new(
                &scaleproof_sim::Timing::preset(scaleproof_sim::TimingPreset::Fast),
                crate::backend::BackendKind::Local,
                Some(7),
            )),
            workload: Some(WorkloadReport {
                cpu_request_millicores: 100,
                cpu_limit_millicores: 200,
                env: BTreeMap::from([("IRIS_CPU_COST_MS".into(), "10".into())]),
            }),
            hpa_sync_period_s: Some(1.0),
            metric_resolution_s: Some(1.0),
            lanes: None,
        },
        setup: vec![SetupStep {
            name: "build iris-server".into(),
            outcome: Outcome::Pass,
            duration_s: 1.5,
            message: None,
        }],
        scenarios,
        comparisons: Vec::new(),
        baseline: Vec::new(),
        against_baseline: None,
    }
}

fn could_not_start(mut s: ScenarioReport) -> ScenarioReport {
    s.error = Some((&GateError::Setup("replicas did not start".into())).into());
    s
}

#[test]
fn exit_status_distinguishes_pass_fail_and_infrastructure() {
    assert_eq!(
        report(vec![scenario("a", &[V::Pass])]).exit_status(),
        ExitStatus::Passed
    );
    assert_eq!(
        report(vec![scenario("a", &[V::Pass, V::Fail])]).exit_status(),
        ExitStatus::ExpectationFailed
    );
    let broken = could_not_start(scenario("a", &[V::Fail]));
    assert_eq!(
        report(vec![broken]).exit_status(),
        ExitStatus::InfrastructureError
    );
    let mut setup_failed = report(vec![]);
    setup_failed.setup[0].outcome = Outcome::Error;
    assert_eq!(setup_failed.exit_status(), ExitStatus::InfrastructureError);
}

#[test]
fn json_round_trips_and_carries_the_schema_version() {
    let r = report(vec![scenario("a", &[V::Pass])]);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["schema_version"], SCHEMA_VERSION);
    assert_eq!(json["scenarios"][0]["load"]["throughput_per_s"], 100.0);
    assert_eq!(
        json["scenarios"][0]["timeline"]["samples"][1]["conditions"][0]["type"],
        "ScalingLimited"
    );
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
}

#[test]
fn junit_has_a_setup_suite_and_a_suite_per_scenario_with_readable_failures() {
    let mut broken = could_not_start(scenario("b", &[]));
    broken.load = None;
    let xml = junit::render(&report(vec![scenario("a", &[V::Pass, V::Fail]), broken])).unwrap();
    assert!(xml.contains(r#"<testsuite id="0" name="setup""#), "{xml}");
    assert!(
        xml.contains(r#"name="a""#) && xml.contains(r#"name="b""#),
        "{xml}"
    );
    assert!(xml.contains(r#"<testcase name="check1 holds""#), "{xml}");
    // The failure message says expected vs measured, XML-escaped.
    assert!(
        xml.contains(
            r#"message="expected check1 holds, measured check1 measured &lt;&amp;&gt; value""#
        ),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<error type="setup" message="replicas did not start""#),
        "{xml}"
    );
}

#[test]
fn junit_reports_a_failed_setup_as_an_error() {
    let mut r = report(vec![]);
    r.setup[0].outcome = Outcome::Error;
    r.setup[0].message = Some("docker daemon not reachable".into());
    let xml = junit::render(&r).unwrap();
    assert!(
        xml.contains(r#"<error type="setup" message="docker daemon not reachable""#),
        "{xml}"
    );
}

#[test]
fn markdown_has_a_table_per_scenario_a_chart_and_escaped_cells() {
    let md = markdown::render(&report(vec![scenario("a", &[V::Pass, V::Fail])]));
    assert!(
        md.starts_with("# scaleproof: ❌ expectations failed"),
        "{md}"
    );
    assert!(md.contains("## ❌ a"), "{md}");
    assert!(
        md.contains("| ✅ | check0 holds | check0 measured <&> value |"),
        "{md}"
    );
    assert!(
        md.contains("\n\na | described\n\n"),
        "the description is a paragraph: {md}"
    );
    assert!(md.contains("```mermaid\nxychart-beta"), "{md}");
    assert!(
        md.contains("bar [1, 1, 3]"),
        "ready replicas at the end of each second: {md}"
    );
    assert!(md.contains("scaled 1 -> 3"), "{md}");
}

#[test]
fn markdown_lists_what_a_scenario_rode_through_in_plain_sight() {
    let clean = markdown::render(&report(vec![scenario("a", &[V::Pass])]));
    assert!(!clean.contains("Ridden through"), "{clean}");

    let mut tl = timeline(&[(0.0, 1, 1, Some(180)), (9.0, 3, 3, Some(90))]);
    tl.incident(
        4.0,
        "container iris-server of pod p restarted (1 restart in all): killed by SIGKILL",
    );
    tl.metrics_gaps.push(crate::timeline::MetricsGap {
        from_s: 1.0,
        to_s: 3.5,
        cause: "API server answered 503 ServiceUnavailable: service unavailable".into(),
        recovered: true,
    });
    let mut s = scenario("a", &[V::Pass]);
    s.timeline = TimelineReport::from(&tl);
    let md = markdown::render(&report(vec![s.clone()]));
    let section = md
        .split("**Ridden through**")
        .nth(1)
        .expect("a section of its own");
    assert!(section.contains("killed by SIGKILL"), "{md}");
    assert!(
        section.contains("metrics gap 1.0-3.5 s (2.5 s): API server answered 503"),
        "{md}"
    );
    // report.json carries both, and reads back.
    let json = serde_json::to_string(&s).expect("serialize");
    let back: ScenarioReport = serde_json::from_str(&json).expect("read back");
    assert_eq!(back.timeline.metrics_gaps.len(), 1);
    assert!(back.timeline.events.iter().any(|e| e.incident));
}

#[test]
fn chart_shows_the_starting_replicas_before_the_first_sample() {
    let mut late = scenario("late", &[]);
    for sample in &mut late.timeline.samples {
        sample.t_s += 1.5;
    }
    let md = markdown::render(&report(vec![late]));
    assert!(md.contains("bar [1, 1, 1]"), "{md}");
}

#[test]
fn svg_draws_every_scenario() {
    let svg = svg::render(&report(vec![scenario("a", &[]), scenario("b", &[])])).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    assert!(svg.contains("a: replicas") && svg.contains("b: replicas"));
    assert!(svg.contains("CPU utilization"));
    let empty = svg::render(&report(vec![])).unwrap();
    assert!(empty.contains("no scenario ran"));
}

#[test]
fn svg_draws_every_metric_against_its_target_when_there_is_more_than_cpu() {
    let mut memory_bound = scenario("m", &[]);
    let metric = |name: &str, pct: u32| super::model::MetricReport {
        name: name.into(),
        current_utilization_pct: Some(pct),
        current_average_value: None,
        target_utilization_pct: Some(50),
        target_average_value: None,
        proposal_replicas: None,
    };
    for sample in &mut memory_bound.timeline.samples {
        sample.metrics = vec![metric("cpu", 20), metric("memory", 150)];
    }
    assert!(!memory_bound.timeline.samples.is_empty());
    let svg = svg::render(&report(vec![memory_bound])).unwrap();
    let at = svg
        .find("HPA metrics (% of each target)")
        .expect("a metrics panel");
    // The legend names each metric after the panel's title.
    assert!(svg[at..].contains("memory"), "no memory line");
}

#[test]
fn terminal_table_lists_every_verdict_and_the_exit_code() {
    let text = table::render(&report(vec![scenario("a", &[V::Pass, V::Fail])]));
    assert!(
        text.contains("check1 holds") && text.contains("FAIL"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .ends_with("FAILED: an expectation did not hold (exit 1)"),
        "{text}"
    );
}

#[test]
fn write_all_writes_the_four_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let written = report(vec![scenario("a", &[V::Pass])])
        .write_all(dir.path())
        .unwrap();
    let names: Vec<_> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["report.json", "junit.xml", "summary.md", "timeline.svg"]
    );
    let back = Report::read(&dir.path().join("report.json")).unwrap();
    assert_eq!(back.scenarios[0].name, "a");
}

#[test]
fn reading_something_else_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    std::fs::write(&path, "{\"hello\": 1}").unwrap();
    let err = Report::read(&path).unwrap_err();
    assert!(
        err.to_string().contains("is not a scaleproof report"),
        "{err}"
    );
}

#[test]
fn baseline_flags_regressions_beyond_the_margin() {
    let margins = BaselineMargins::default();
    let before = report(vec![scenario("a", &[])]);
    let mut now = report(vec![scenario("a", &[]), scenario("new", &[])]);
    let same = baseline::compare(
        &now,
        &before,
        "main/report.json",
        &margins,
        &BTreeMap::new(),
    );
    assert!(same.verdicts.iter().all(VerdictReport::passed), "{same:#?}");
    let checks: Vec<_> = same.verdicts.iter().map(|v| v.check.as_str()).collect();
    assert_eq!(
        checks,
        [
            "baseline.a.p95",
            "baseline.a.throughput",
            "baseline.a.first_scale_up"
        ],
        "`new` is only noted"
    );
    let new = &same.comparison.scenarios[1];
    assert_eq!(new.name, "new");
    assert!(new.note.as_deref().unwrap().contains("not in the baseline"));
    assert_eq!(new.throughput_per_s.baseline, None);

    // 42 ms * 1.2 + 5 ms = 55.4 ms is the limit: 54.6 passes, 56 fails.
    let load = now.scenarios[0].load.as_mut().unwrap();
    load.latency_ms.as_mut().unwrap().p95_ms = 54.6;
    let within = baseline::compare(&now, &before, "b", &margins, &BTreeMap::new());
    assert!(
        within.verdicts.iter().all(VerdictReport::passed),
        "{within:#?}"
    );

    let load = now.scenarios[0].load.as_mut().unwrap();
    load.latency_ms.as_mut().unwrap().p95_ms = 56.0;
    load.throughput_per_s = 70.0;
    let worse = baseline::compare(&now, &before, "b", &margins, &BTreeMap::new());
    let failed: Vec<_> = worse
        .verdicts
        .iter()
        .filter(|v| !v.passed())
        .map(|v| v.check.as_str())
        .collect();
    assert_eq!(failed, ["baseline.a.p95", "baseline.a.throughput"]);
    let a = &worse.comparison.scenarios[0];
    assert_eq!(a.throughput_per_s.now, Some(70.0));
    assert!((a.p95_ms.change_pct.unwrap() - (56.0 / 42.0 - 1.0) * 100.0).abs() < 1e-9);

    let mut gone = before.clone();
    gone.scenarios.push(scenario("retired", &[]));
    let noted = baseline::compare(&before, &gone, "b", &margins, &BTreeMap::new());
    assert!(noted.verdicts.iter().all(VerdictReport::passed));
    assert!(
        noted
            .comparison
            .note
            .as_deref()
            .unwrap()
            .contains("retired"),
        "{noted:#?}"
    );
}

#[test]
fn a_scenario_with_its_own_margins_is_judged_by_them() {
    let before = report(vec![scenario("noisy", &[]), scenario("steady", &[])]);
    let mut now = before.clone();
    for s in &mut now.scenarios {
        s.load.as_mut().unwrap().latency_ms.as_mut().unwrap().p95_ms = 42.0 * 3.0;
    }
    let own = BTreeMap::from([(
        "noisy".to_string(),
        BaselineMargins {
            p95: 3.0,
            ..BaselineMargins::default()
        },
    )]);
    let compared = baseline::compare(&now, &before, "b", &BaselineMargins::default(), &own);
    let failed: Vec<_> = compared
        .verdicts
        .iter()
        .filter(|v| !v.passed())
        .map(|v| v.check.as_str())
        .collect();
    assert_eq!(failed, ["baseline.steady.p95"]);
    assert_eq!(compared.comparison.scenarios[0].margins.p95, 3.0);
    assert_eq!(compared.comparison.scenarios[1].margins.p95, 0.2);
}

#[test]
fn a_slower_first_scale_up_fails_beyond_fraction_and_slack() {
    let margins = BaselineMargins {
        first_scale_up: 0.5,
        first_scale_up_slack_syncs: 15.0,
        ..BaselineMargins::default()
    };
    let before = report(vec![scenario("a", &[])]);
    let base = before.scenarios[0].first_scale_up_s.unwrap();
    let mut now = before.clone();
    now.scenarios[0].first_scale_up_s = Some(base * 1.5 + 14.9);
    let ok = baseline::compare(&now, &before, "b", &margins, &BTreeMap::new());
    assert!(ok.verdicts.iter().all(VerdictReport::passed), "{ok:#?}");
    now.scenarios[0].first_scale_up_s = Some(base * 1.5 + 15.1);
    let late = baseline::compare(&now, &before, "b", &margins, &BTreeMap::new());
    assert!(
        late.verdicts
            .iter()
            .any(|v| v.check == "baseline.a.first_scale_up" && !v.passed())
    );
    now.scenarios[0].first_scale_up_s = None;
    let never = baseline::compare(&now, &before, "b", &margins, &BTreeMap::new());
    assert!(
        never
            .verdicts
            .iter()
            .any(|v| v.check == "baseline.a.first_scale_up" && !v.passed())
    );
}

// On kind the same load is seen a scrape (15 s) and a housekeeping later from run to
// run: the slack in scrape periods is in seconds of the run's own resolution.
#[test]
fn the_first_scale_up_slack_counts_scrape_periods_of_the_run() {
    let margins = BaselineMargins {
        first_scale_up: 0.5,
        first_scale_up_slack_syncs: 0.0,
        first_scale_up_slack_scrapes: 2.0,
        ..BaselineMargins::default()
    };
    let mut before = report(vec![scenario("a", &[])]);
    before.run.metric_resolution_s = Some(15.0);
    before.scenarios[0].first_scale_up_s = Some(10.0);
    let mut now = before.clone();
    // 10 x 1.5 + 2 x 15 s = 45 s.
    now.scenarios[0].first_scale_up_s = Some(44.9);
    let ok = baseline::compare(&now, &before, "b", &margins, &BTreeMap::new());
    assert!(ok.verdicts.iter().all(VerdictReport::passed), "{ok:#?}");
    assert_eq!(ok.comparison.margins.first_scale_up_slack_s, 30.0);
    now.scenarios[0].first_scale_up_s = Some(45.1);
    let late = baseline::compare(&now, &before, "b", &margins, &BTreeMap::new());
    assert!(
        late.verdicts
            .iter()
            .any(|v| v.check == "baseline.a.first_scale_up" && !v.passed())
    );
    // A report from before the resolution was recorded: metrics-server's 15 s.
    now.run.metric_resolution_s = None;
    let old = baseline::compare(&now, &before, "b", &margins, &BTreeMap::new());
    assert_eq!(old.comparison.margins.first_scale_up_slack_s, 30.0);
}

#[test]
fn a_baseline_measuring_something_else_is_noted_not_failed() {
    let margins = BaselineMargins::default();
    let before = report(vec![scenario("a", &[])]);

    let mut kind = before.clone();
    kind.run.backend = Some(crate::backend::BackendKind::Kind);
    kind.run.cpu_limit = None;
    let other_backend = baseline::compare(&kind, &before, "b", &margins, &BTreeMap::new());
    assert!(other_backend.verdicts.is_empty());
    let note = other_backend.comparison.note.unwrap();
    assert!(note.contains("ran on local, this run on kind"), "{note}");

    let mut cheaper = before.clone();
    cheaper.run.workload.as_mut().unwrap().cpu_limit_millicores = 400;
    let other_pods = baseline::compare(&cheaper, &before, "b", &margins, &BTreeMap::new());
    assert!(other_pods.verdicts.is_empty());
    assert!(
        other_pods
            .comparison
            .note
            .unwrap()
            .contains("the pods differ")
    );

    let missing = baseline::unavailable("gone.json", "no such file".into(), &before.run, &margins);
    assert!(missing.verdicts.is_empty());
    assert_eq!(missing.comparison.note.as_deref(), Some("no such file"));
}

/// One report with every kind of row: a passing scenario, a failing one, one that
/// could not run, a failed setup step after a passed one, a comparison, and a
/// baseline with a regression and a scenario it lacks.
fn everything() -> Report {
    let mut r = report(vec![
        scenario("scale-up", &[V::Pass, V::Pass]),
        scenario("bottleneck", &[V::Pass, V::Fail]),
        could_not_start(scenario("broken", &[])),
    ]);
    r.scenarios[2].load = None;
    r.scenarios[2].verdicts.clear();
    r.setup.push(SetupStep {
        name: "wait for pod metrics".into(),
        outcome: Outcome::Error,
        duration_s: 0.0,
        message: Some("no PodMetrics | after 90 s".into()),
    });
    r.comparisons.push(VerdictReport {
        check: "scaling-gain".into(),
        expected: "throughput(bottleneck) / throughput(restricted) >= 1.50".into(),
        measured: "2.61x (101.0 vs 38.7 req/s)".into(),
        outcome: Outcome::Pass,
    });
    let mut main = report(vec![scenario("scale-up", &[]), scenario("bottleneck", &[])]);
    main.run.git_sha = Some("0ld5ha1".into());
    main.scenarios[1].load.as_mut().unwrap().throughput_per_s = 130.0;
    let compared = baseline::compare(
        &r,
        &main,
        "baseline/report.json",
        &BaselineMargins::default(),
        &BTreeMap::from([(
            "scale-up".to_string(),
            BaselineMargins {
                p95: 3.0,
                ..BaselineMargins::default()
            },
        )]),
    );
    r.baseline = compared.verdicts;
    r.against_baseline = Some(compared.comparison);
    r
}

#[test]
fn junit_xml_snapshot() {
    insta::assert_snapshot!(junit::render(&everything()).unwrap());
}

#[test]
fn summary_md_snapshot() {
    insta::assert_snapshot!(markdown::render(&everything()));
}

#[test]
fn terminal_table_snapshot() {
    insta::assert_snapshot!(table::render(&everything()));
}

#[test]
fn a_scenario_suite_takes_as_long_as_its_scenario() {
    let xml = junit::render(&report(vec![scenario("a", &[V::Pass])])).unwrap();
    assert!(
        xml.contains(r#"name="a" package="testsuite/a" tests="2" errors="0" failures="0" hostname="localhost" timestamp="2026-11-28T03:00:00Z" time="4""#),
        "{xml}"
    );
}
