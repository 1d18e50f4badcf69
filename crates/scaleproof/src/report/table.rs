//! The summary table printed at the end of a run, for the person at the terminal.

use std::fmt::Write as _;

use super::Outcome;
use super::{ExitStatus, Report};

pub fn render(report: &Report) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    for step in report.setup.iter().filter(|s| s.outcome != Outcome::Pass) {
        rows.push([
            "setup".into(),
            step.name.clone(),
            mark(step.outcome).into(),
            step.message.clone().unwrap_or_default(),
        ]);
    }
    for s in &report.scenarios {
        if let Some(error) = &s.error {
            rows.push([
                s.name.clone(),
                "scenario ran".into(),
                mark(Outcome::Error).into(),
                error.to_string(),
            ]);
        }
        for v in &s.verdicts {
            rows.push([
                s.name.clone(),
                v.expected.clone(),
                mark(v.outcome).into(),
                v.measured.clone(),
            ]);
        }
    }
    for v in report.comparisons.iter().chain(report.baseline.iter()) {
        rows.push([
            "compare".into(),
            v.expected.clone(),
            mark(v.outcome).into(),
            v.measured.clone(),
        ]);
    }
    let headers = ["scenario", "expected", "result", "measured"];
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count()).min(70);
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: [&str; 4]| {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    };
    line(&mut out, headers);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut out, [&rule[0], &rule[1], &rule[2], &rule[3]]);
    for row in &rows {
        line(&mut out, [&row[0], &row[1], &row[2], &row[3]]);
    }
    let verdict = match report.exit_status() {
        ExitStatus::Passed => "PASSED: every expectation held (exit 0)",
        ExitStatus::ExpectationFailed => "FAILED: an expectation did not hold (exit 1)",
        ExitStatus::InfrastructureError => "ERROR: setup or infrastructure failed (exit 2)",
    };
    let _ = writeln!(out, "\n{verdict}");
    out
}

fn mark(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Error => "ERROR",
    }
}
