//! `--baseline OLD/report.json`: this run next to a previous one (in the PR
//! workflow, main's newest run), and a check per figure that fails on a regression
//! beyond the margins of `[baseline]`: p95 latency up, throughput down, or the first
//! scale-up later.
//!
//! Only like is compared with like. A baseline from another backend, with other CPU
//! limits or with other pods (requests, limits, the cost knob) measured something
//! else: the comparison is skipped with a note instead of producing meaningless
//! regressions. A missing or unreadable baseline is noted too: the gate judges the
//! change, and main having no usable run yet is not the change's fault.

use std::collections::BTreeMap;

use super::{
    BaselineComparison, BaselineMarginsReport, Delta, Outcome, Report, RunMeta, ScenarioDelta,
    ScenarioReport, VerdictReport, WorkloadReport,
};
use crate::scenario::BaselineMargins;

/// The checks (JUnit testcases) and the side-by-side figures (summary table).
#[derive(Debug, Clone, PartialEq)]
pub struct Compared {
    pub verdicts: Vec<VerdictReport>,
    pub comparison: BaselineComparison,
}

/// Why `baseline` does not measure what `current` does, if it does not.
pub fn incomparable(current: &RunMeta, baseline: &RunMeta) -> Option<String> {
    if current.backend != baseline.backend {
        return Some(format!(
            "the baseline ran on {}, this run on {}",
            baseline.backend_name(),
            current.backend_name()
        ));
    }
    if current.cpu_limit != baseline.cpu_limit {
        return Some(format!(
            "CPU limits were enforced differently: baseline {}, this run {}",
            baseline.cpu_limit.as_deref().unwrap_or("by the cluster"),
            current.cpu_limit.as_deref().unwrap_or("by the cluster"),
        ));
    }
    other_pods(current.workload.as_ref(), baseline.workload.as_ref())
}

/// Why a baseline with pods `had` did not measure pods `want`, if it did not. A side
/// that did not record its pods (an older report) cannot be checked and passes.
pub fn other_pods(want: Option<&WorkloadReport>, had: Option<&WorkloadReport>) -> Option<String> {
    let (a, b) = (want?, had?);
    (a != b).then(|| {
        format!(
            "the pods differ: baseline cpu {}m/{}m (request/limit) env {:?}, this run \
             cpu {}m/{}m env {:?}",
            b.cpu_request_millicores,
            b.cpu_limit_millicores,
            b.env,
            a.cpu_request_millicores,
            a.cpu_limit_millicores,
            a.env
        )
    })
}

/// A baseline that could not be used: the reason is noted, nothing is checked.
pub fn unavailable(path: &str, why: String, run: &RunMeta, margins: &BaselineMargins) -> Compared {
    Compared {
        verdicts: Vec::new(),
        comparison: BaselineComparison {
            path: path.to_string(),
            git_sha: None,
            started_at: None,
            note: Some(why),
            margins: margins_report(margins, run),
            scenarios: Vec::new(),
        },
    }
}

/// Compares every scenario of `current` with the same-named scenario of `baseline`,
/// with `margins`, or a scenario's own from `per_scenario`.
pub fn compare(
    current: &Report,
    baseline: &Report,
    path: &str,
    margins: &BaselineMargins,
    per_scenario: &BTreeMap<String, BaselineMargins>,
) -> Compared {
    let mut comparison = BaselineComparison {
        path: path.to_string(),
        git_sha: baseline.run.git_sha.clone(),
        started_at: Some(baseline.run.started_at.clone()),
        note: None,
        margins: margins_report(margins, &current.run),
        scenarios: Vec::new(),
    };
    if let Some(why) = incomparable(&current.run, &baseline.run) {
        comparison.note = Some(format!("not compared: {why}"));
        return Compared {
            verdicts: Vec::new(),
            comparison,
        };
    }
    let mut verdicts = Vec::new();
    for now in &current.scenarios {
        let before = baseline.scenario(&now.name);
        let own = per_scenario.get(&now.name).unwrap_or(margins);
        let delta = ScenarioDelta {
            margins: margins_report(own, &current.run),
            name: now.name.clone(),
            throughput_per_s: Delta::new(throughput(now), before.and_then(throughput)),
            p95_ms: Delta::new(p95(now), before.and_then(p95)),
            first_scale_up_s: Delta::new(
                now.first_scale_up_s,
                before.and_then(|b| b.first_scale_up_s),
            ),
            note: before
                .is_none()
                .then(|| "not in the baseline: nothing to compare".to_string()),
        };
        if before.is_some() {
            verdicts.extend(checks(&delta, &delta.margins));
        }
        comparison.scenarios.push(delta);
    }
    let gone: Vec<&str> = baseline
        .scenarios
        .iter()
        .filter(|b| current.scenario(&b.name).is_none())
        .map(|b| b.name.as_str())
        .collect();
    if !gone.is_empty() {
        comparison.note = Some(format!(
            "in the baseline but not run now: {}",
            gone.join(", ")
        ));
    }
    Compared {
        verdicts,
        comparison,
    }
}

fn throughput(s: &ScenarioReport) -> Option<f64> {
    s.load.as_ref().map(|l| l.throughput_per_s)
}

fn p95(s: &ScenarioReport) -> Option<f64> {
    s.load.as_ref().and_then(|l| l.latency_ms).map(|l| l.p95_ms)
}

/// The checks of one scenario present on both sides.
fn checks(d: &ScenarioDelta, m: &BaselineMarginsReport) -> Vec<VerdictReport> {
    let name = &d.name;
    let mut out = Vec::new();
    if let (Some(a), Some(b)) = (d.p95_ms.now, d.p95_ms.baseline) {
        let limit = b * (1.0 + m.p95) + m.p95_slack_ms;
        out.push(VerdictReport {
            check: format!("baseline.{name}.p95"),
            expected: format!(
                "{name}: p95 <= baseline + {:.0} % + {} ms",
                m.p95 * 100.0,
                m.p95_slack_ms
            ),
            measured: format!(
                "{a:.1} ms vs baseline {b:.1} ms{}, limit {limit:.1} ms",
                pct(d.p95_ms.change_pct)
            ),
            outcome: pass(a <= limit),
        });
    }
    if let (Some(a), Some(b)) = (d.throughput_per_s.now, d.throughput_per_s.baseline) {
        let limit = b * (1.0 - m.throughput);
        out.push(VerdictReport {
            check: format!("baseline.{name}.throughput"),
            expected: format!(
                "{name}: throughput >= baseline - {:.0} %",
                m.throughput * 100.0
            ),
            measured: format!(
                "{a:.1} req/s vs baseline {b:.1} req/s{}, limit {limit:.1} req/s",
                pct(d.throughput_per_s.change_pct)
            ),
            outcome: pass(a >= limit),
        });
    }
    match (d.first_scale_up_s.now, d.first_scale_up_s.baseline) {
        (Some(a), Some(b)) => {
            let limit = b * (1.0 + m.first_scale_up) + m.first_scale_up_slack_s;
            out.push(VerdictReport {
                check: format!("baseline.{name}.first_scale_up"),
                expected: format!(
                    "{name}: first scale-up <= baseline + {:.0} % + {} s",
                    m.first_scale_up * 100.0,
                    m.first_scale_up_slack_s
                ),
                measured: format!(
                    "{a:.1} s vs baseline {b:.1} s{}, limit {limit:.1} s",
                    pct(d.first_scale_up_s.change_pct)
                ),
                outcome: pass(a <= limit),
            })
        }
        (None, Some(b)) => out.push(VerdictReport {
            check: format!("baseline.{name}.first_scale_up"),
            expected: format!(
                "{name}: first scale-up <= baseline + {:.0} % + {} s",
                m.first_scale_up * 100.0,
                m.first_scale_up_slack_s
            ),
            measured: format!("no scale-up; the baseline scaled up at {b:.1} s"),
            outcome: Outcome::Fail,
        }),
        _ => {}
    }
    out
}

/// The margins with the sync- and scrape-period slack in seconds of `run`.
fn margins_report(m: &BaselineMargins, run: &RunMeta) -> BaselineMarginsReport {
    // Upstream's default `--horizontal-pod-autoscaler-sync-period`, and the
    // resolution of metrics-server's released manifest, when the run does not say
    // (it ended before a backend was chosen, or an old report).
    let sync_s = run.hpa_sync_period_s.unwrap_or(15.0);
    let scrape_s = run.metric_resolution_s.unwrap_or(15.0);
    BaselineMarginsReport {
        p95: m.p95,
        p95_slack_ms: m.p95_slack_ms,
        throughput: m.throughput,
        first_scale_up: m.first_scale_up,
        first_scale_up_slack_syncs: m.first_scale_up_slack_syncs,
        first_scale_up_slack_scrapes: m.first_scale_up_slack_scrapes,
        first_scale_up_slack_s: m.first_scale_up_slack_syncs * sync_s
            + m.first_scale_up_slack_scrapes * scrape_s,
    }
}

fn pct(change: Option<f64>) -> String {
    change.map(|c| format!(" ({c:+.0} %)")).unwrap_or_default()
}

fn pass(ok: bool) -> Outcome {
    if ok { Outcome::Pass } else { Outcome::Fail }
}
