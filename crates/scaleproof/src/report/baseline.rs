//! `--baseline OLD/report.json`: compare this run with a previous one and fail on a
//! regression beyond a margin: p95 latency up, throughput down, or the first
//! scale-up later. Scenarios missing on either side are reported, not failed. Runs
//! on different backends (or CPU limits) measure different things: comparing them is
//! refused as an error instead of producing meaningless regressions.

use super::{Outcome, VerdictReport};
use super::{Report, ScenarioReport};

/// Default allowed regression: 20 % (a noisy CI machine varies by about that much).
pub const DEFAULT_MARGIN: f64 = 0.20;

/// Compares every scenario of `current` with the same-named scenario of `baseline`.
pub fn compare(current: &Report, baseline: &Report, margin: f64) -> Vec<VerdictReport> {
    let same_engine = (&current.run.backend, &current.run.cpu_limit)
        == (&baseline.run.backend, &baseline.run.cpu_limit);
    if !same_engine {
        return vec![VerdictReport {
            check: "baseline.comparable".into(),
            expected: "the baseline ran on the same backend with the same CPU limits".into(),
            measured: format!(
                "baseline: {} ({}), this run: {} ({})",
                baseline.run.backend_name(),
                baseline
                    .run
                    .cpu_limit
                    .as_deref()
                    .unwrap_or("cluster limits"),
                current.run.backend_name(),
                current.run.cpu_limit.as_deref().unwrap_or("cluster limits"),
            ),
            outcome: Outcome::Error,
        }];
    }
    let mut verdicts = Vec::new();
    for before in &baseline.scenarios {
        if current.scenario(&before.name).is_none() {
            verdicts.push(VerdictReport {
                check: format!("baseline.{}", before.name),
                expected: format!("{}: present in this run", before.name),
                measured: "in the baseline but not run now: nothing to compare".into(),
                outcome: Outcome::Pass,
            });
        }
    }
    for now in &current.scenarios {
        let Some(before) = baseline.scenario(&now.name) else {
            verdicts.push(VerdictReport {
                check: format!("baseline.{}", now.name),
                expected: format!("{}: present in the baseline", now.name),
                measured: "not in the baseline report: nothing to compare".into(),
                outcome: Outcome::Pass,
            });
            continue;
        };
        verdicts.extend(compare_scenario(now, before, margin));
    }
    verdicts
}

fn compare_scenario(
    now: &ScenarioReport,
    before: &ScenarioReport,
    margin: f64,
) -> Vec<VerdictReport> {
    let name = &now.name;
    let mut out = Vec::new();
    let p95 = |s: &ScenarioReport| s.load.as_ref().and_then(|l| l.latency_ms).map(|l| l.p95_ms);
    if let (Some(a), Some(b)) = (p95(now), p95(before)) {
        out.push(VerdictReport {
            check: format!("baseline.{name}.p95"),
            expected: format!(
                "{name}: p95 <= baseline {b:.1} ms + {:.0} %",
                margin * 100.0
            ),
            measured: format!("{a:.1} ms ({:+.0} %)", change(a, b)),
            outcome: pass(a <= b * (1.0 + margin)),
        });
    }
    let rps = |s: &ScenarioReport| s.load.as_ref().map(|l| l.throughput_per_s);
    if let (Some(a), Some(b)) = (rps(now), rps(before)) {
        out.push(VerdictReport {
            check: format!("baseline.{name}.throughput"),
            expected: format!(
                "{name}: throughput >= baseline {b:.1} req/s - {:.0} %",
                margin * 100.0
            ),
            measured: format!("{a:.1} req/s ({:+.0} %)", change(a, b)),
            outcome: pass(a >= b * (1.0 - margin)),
        });
    }
    match (now.first_scale_up_s, before.first_scale_up_s) {
        (Some(a), Some(b)) => out.push(VerdictReport {
            check: format!("baseline.{name}.first_scale_up"),
            expected: format!(
                "{name}: first scale-up <= baseline {b:.1} s + {:.0} %",
                margin * 100.0
            ),
            measured: format!("{a:.1} s"),
            // One second of slack: samples are taken once per sync period.
            outcome: pass(a <= b * (1.0 + margin) + 1.0),
        }),
        (None, Some(b)) => out.push(VerdictReport {
            check: format!("baseline.{name}.first_scale_up"),
            expected: format!("{name}: scales up, as the baseline did at {b:.1} s"),
            measured: "no scale-up".into(),
            outcome: Outcome::Fail,
        }),
        _ => {}
    }
    out
}

fn change(now: f64, before: f64) -> f64 {
    if before == 0.0 {
        0.0
    } else {
        (now / before - 1.0) * 100.0
    }
}

fn pass(ok: bool) -> Outcome {
    if ok { Outcome::Pass } else { Outcome::Fail }
}
