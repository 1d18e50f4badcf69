//! `junit.xml`: one testsuite per scenario, one testcase per expectation, plus a
//! `setup` suite, so an infrastructure failure shows in the CI UI as an error rather
//! than as a missing file. Consumers (mikepenz/action-junit-report, dorny/test-reporter)
//! show `failure@message`: it carries "expected ..., measured ...".

use junit_report::{ReportBuilder, TestCase, TestSuiteBuilder};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::{Outcome, VerdictReport};
use super::{Report, ReportError};

pub fn render(report: &Report) -> Result<String, ReportError> {
    let mut builder = ReportBuilder::new();
    // Every suite carries the run's start, so the same report renders the same XML.
    let started = OffsetDateTime::parse(&report.run.started_at, &Rfc3339)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);

    let mut setup = TestSuiteBuilder::new("setup");
    setup.set_timestamp(started);
    for step in &report.setup {
        let time = Duration::seconds_f64(step.duration_s);
        let case = match step.outcome {
            Outcome::Pass => TestCase::success(&step.name, time),
            Outcome::Fail | Outcome::Error => TestCase::error(
                &step.name,
                time,
                "setup",
                step.message.as_deref().unwrap_or("failed"),
            ),
        };
        setup.add_testcase(with_class(case, "setup"));
    }
    builder.add_testsuite(setup.build());

    for scenario in &report.scenarios {
        let mut suite = TestSuiteBuilder::new(&scenario.name);
        suite.set_timestamp(started);
        let class = format!("scaleproof.{}", scenario.name);
        // A suite's time is the sum of its testcases'. The expectations are judged
        // after the fact (time 0), so the scenario's own run is a testcase of its own
        // carrying its duration: CI UIs then show how long each scenario took.
        let ran = Duration::seconds_f64(scenario.duration_s);
        let run_case = match &scenario.error {
            Some(error) => TestCase::error("scenario ran", ran, &error.kind, &error.message),
            None => TestCase::success("scenario ran", ran),
        };
        suite.add_testcase(with_class(run_case, &class));
        for verdict in &scenario.verdicts {
            suite.add_testcase(with_class(case(verdict), &class));
        }
        if let Some(load) = &scenario.load {
            let summary = format!(
                "sent {} ok {} failed {} | {:.1} req/s | success {:.1} % | p95 {} ms",
                load.sent,
                load.ok,
                load.failed,
                load.throughput_per_s,
                load.success_rate * 100.0,
                load.latency_ms
                    .map_or("-".into(), |l| format!("{:.1}", l.p95_ms)),
            );
            suite.set_system_out(&summary);
        }
        builder.add_testsuite(suite.build());
    }

    if !report.comparisons.is_empty() {
        let mut suite = TestSuiteBuilder::new("comparisons");
        suite.set_timestamp(started);
        for verdict in &report.comparisons {
            suite.add_testcase(with_class(case(verdict), "scaleproof.comparisons"));
        }
        builder.add_testsuite(suite.build());
    }

    // Against the baseline: its checks, or only the note saying why there are none
    // (a CI UI then shows an empty suite with the reason instead of nothing).
    if let Some(against) = &report.against_baseline {
        let mut suite = TestSuiteBuilder::new("baseline");
        suite.set_timestamp(started);
        for verdict in &report.baseline {
            suite.add_testcase(with_class(case(verdict), "scaleproof.baseline"));
        }
        let source = format!(
            "baseline {} ({})",
            against.path,
            against.git_sha.as_deref().unwrap_or("commit unknown")
        );
        suite.set_system_out(&match &against.note {
            Some(note) => format!("{source}: {note}"),
            None => source,
        });
        builder.add_testsuite(suite.build());
    }

    let mut xml = Vec::new();
    builder
        .build()
        .write_xml(&mut xml)
        .map_err(|e| ReportError::Render {
            what: "junit.xml",
            message: e.to_string(),
        })?;
    String::from_utf8(xml).map_err(|e| ReportError::Render {
        what: "junit.xml",
        message: e.to_string(),
    })
}

/// The testcase name says what was expected, so a list of names reads as the contract.
fn case(verdict: &VerdictReport) -> TestCase {
    let name = verdict.expected.as_str();
    let message = format!(
        "expected {}, measured {}",
        verdict.expected, verdict.measured
    );
    match verdict.outcome {
        Outcome::Pass => {
            let mut case = TestCase::success(name, Duration::ZERO);
            case.set_system_out(&format!("measured {}", verdict.measured));
            case
        }
        Outcome::Fail => TestCase::failure(name, Duration::ZERO, &verdict.check, &message),
        Outcome::Error => TestCase::error(name, Duration::ZERO, &verdict.check, &message),
    }
}

fn with_class(mut case: TestCase, class: &str) -> TestCase {
    case.set_classname(class);
    case
}
