//! `summary.md`: per scenario a table of expected vs measured, the scaling gain, and a
//! Mermaid `xychart-beta` of replicas and throughput over time. GitHub renders both
//! in `$GITHUB_STEP_SUMMARY`; elsewhere the tables still read as plain text.

use std::fmt::Write as _;

use super::{BaselineComparison, BaselineMarginsReport, Delta, Outcome, VerdictReport};
use super::{EventReport, Report, ScenarioReport};

pub fn render(report: &Report) -> String {
    let mut md = String::new();
    let status = match report.exit_status() {
        super::ExitStatus::Passed => "✅ all expectations met",
        super::ExitStatus::ExpectationFailed => "❌ expectations failed",
        super::ExitStatus::InfrastructureError => "⚠️ setup or infrastructure error",
    };
    let _ = writeln!(md, "# scaleproof: {status}\n");
    let _ = writeln!(
        md,
        "Backend **{}**{}, config `{}`, {} → {}.\n",
        report.run.backend_name(),
        report
            .run
            .git_sha
            .as_deref()
            .map(|s| format!(" at `{s}`"))
            .unwrap_or_default(),
        report.run.config,
        report.run.started_at,
        report.run.ended_at,
    );
    if let Some(cpu) = &report.run.cpu_limit {
        let _ = writeln!(md, "CPU limits: {cpu}\n");
    }
    if let Some(memory) = &report.run.memory_limit {
        let _ = writeln!(md, "Memory limits: {memory}\n");
    }
    if let Some(network) = &report.run.pod_network {
        let _ = writeln!(md, "Pod network: {network}\n");
    }
    if let Some(lanes) = &report.run.lanes {
        let _ = writeln!(md, "Lanes: {}\n", cell(&lanes.reason));
    }
    if let Some(t) = &report.run.local_timing {
        let stats = if t.stats_interval_s > 0.0 {
            format!(
                "CPU sampled every {}-{} s",
                t.stats_interval_s, t.stats_interval_busy_max_s
            )
        } else {
            "CPU read at each scrape".to_string()
        };
        let start = if t.pod_start_max_s > t.pod_start_s {
            format!("{}-{}", t.pod_start_s, t.pod_start_max_s)
        } else {
            t.pod_start_s.to_string()
        };
        let seed = t
            .seed
            .map(|s| format!(", seed {s} (`--set backend.local.seed={s}` repeats its phases)"))
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "Simulated control plane: timing `{}` (HPA sync {} s, metrics every {} s, {stats}, pod start {start} s), {} thresholds{seed}\n",
            serde_json::to_value(t.preset)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            t.hpa_sync_period_s,
            t.metric_resolution_s,
            t.thresholds_of.as_str(),
        );
    }

    if report.setup.iter().any(|s| s.outcome != Outcome::Pass) {
        let _ = writeln!(
            md,
            "## Setup\n\n| step | result | time | message |\n|---|---|---|---|"
        );
        for step in &report.setup {
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} s | {} |",
                step.name,
                icon(step.outcome),
                step.duration_s,
                cell(step.message.as_deref().unwrap_or(""))
            );
        }
        md.push('\n');
    }

    for scenario in &report.scenarios {
        scenario_section(&mut md, scenario);
    }

    if !report.comparisons.is_empty() {
        let _ = writeln!(md, "## Comparisons\n");
        verdict_table(&mut md, report.comparisons.iter());
    }

    if let Some(against) = &report.against_baseline {
        baseline_section(&mut md, against, &report.baseline);
    }
    md
}

fn scenario_section(md: &mut String, s: &ScenarioReport) {
    let _ = writeln!(
        md,
        "## {} {}\n",
        if s.passed() { "✅" } else { "❌" },
        s.name
    );
    if !s.description.is_empty() {
        let _ = writeln!(md, "{}\n", s.description);
    }
    if let Some(error) = &s.error {
        let _ = writeln!(md, "> **Could not run:** {}\n", cell(&error.to_string()));
    }
    if let Some(ns) = &s.namespace {
        let _ = write!(
            md,
            "Namespace `{}` (node port {}): prepared in {:.1} s, waited for {:.1} s.",
            ns.name, ns.node_port, ns.prepare_s, ns.waited_s
        );
        match &s.lane {
            Some(lane) if lane.beside.is_empty() => {
                let _ = write!(md, " Lane {}, alone.", lane.lane);
            }
            Some(lane) => {
                let _ = write!(
                    md,
                    " Lane {}, beside {}.",
                    lane.lane,
                    lane.beside.join(", ")
                );
            }
            None => {}
        }
        let _ = writeln!(md, "\n");
    }
    if let Some(load) = &s.load {
        let latency = load
            .latency_ms
            .map(|l| {
                format!(
                    "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
                    l.p50_ms, l.p95_ms, l.p99_ms
                )
            })
            .unwrap_or_else(|| "no latency measured".into());
        let _ = writeln!(
            md,
            "{} requests in {:.1} s ({:.1} req/s), {:.1} % ok; {latency}; replicas {}..{}, peak {} ready.\n",
            load.sent,
            load.duration_s,
            load.throughput_per_s,
            load.success_rate * 100.0,
            s.bounds.min,
            s.bounds.max,
            s.timeline.peak_ready_replicas(),
        );
    }
    verdict_table(md, s.verdicts.iter());
    ridden_through(md, s);
    chart(md, s);
    if !s.timeline.events.is_empty() {
        let _ = writeln!(md, "<details><summary>Scaling events</summary>\n");
        for e in &s.timeline.events {
            let _ = writeln!(md, "- `{:>6.1} s` {}", e.t_s, e.message);
        }
        let _ = writeln!(md, "\n</details>\n");
    }
}

/// What happened to the scenario rather than by the autoscaler's choice: containers
/// that died, the metrics API gone. In plain sight, not folded away, because a reader
/// has to know what a verdict rode through to trust it.
fn ridden_through(md: &mut String, s: &ScenarioReport) {
    let incidents: Vec<&EventReport> = s.timeline.events.iter().filter(|e| e.incident).collect();
    if incidents.is_empty() && s.timeline.metrics_gaps.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "**Ridden through** (infrastructure, not the service):
"
    );
    for e in incidents {
        let _ = writeln!(md, "- `{:>6.1} s` {}", e.t_s, e.message);
    }
    for g in &s.timeline.metrics_gaps {
        let _ = writeln!(
            md,
            "- metrics gap {:.1}-{:.1} s ({:.1} s{}): {}",
            g.from_s,
            g.to_s,
            g.to_s - g.from_s,
            if g.recovered {
                ""
            } else {
                ", not back by the end"
            },
            g.cause
        );
    }
    let _ = writeln!(md);
}

/// This run's headline figures next to the baseline's, with the change: what a
/// reviewer reads first when a PR is judged against main.
fn baseline_section(md: &mut String, b: &BaselineComparison, checks: &[VerdictReport]) {
    let of = match (&b.git_sha, &b.started_at) {
        (Some(sha), Some(at)) => format!(" (`{sha}`, {at})"),
        (None, Some(at)) => format!(" ({at})"),
        _ => String::new(),
    };
    let _ = writeln!(md, "## Against the baseline{of}\n");
    if let Some(note) = &b.note {
        let _ = writeln!(md, "> **Note:** {}\n", cell(note));
    }
    if b.scenarios.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "| scenario | throughput now / baseline | p95 now / baseline | first scale-up now / baseline |\n|---|---|---|---|"
    );
    for s in &b.scenarios {
        let _ = writeln!(
            md,
            "| {}{} | {} | {} | {} |",
            s.name,
            s.note
                .as_deref()
                .map(|n| format!(" ({})", cell(n)))
                .unwrap_or_default(),
            delta(&s.throughput_per_s, "req/s"),
            delta(&s.p95_ms, "ms"),
            delta(&s.first_scale_up_s, "s"),
        );
    }
    let allowed = |m: &BaselineMarginsReport| {
        format!(
            "p95 +{:.0} % + {} ms, throughput −{:.0} %, first scale-up +{:.0} % + {} s",
            m.p95 * 100.0,
            m.p95_slack_ms,
            m.throughput * 100.0,
            m.first_scale_up * 100.0,
            m.first_scale_up_slack_s,
        )
    };
    let _ = writeln!(
        md,
        "\n- Allowed: {} (`[baseline]` in the config).",
        allowed(&b.margins)
    );
    for s in b.scenarios.iter().filter(|s| s.margins != b.margins) {
        let _ = writeln!(
            md,
            "- {}: {} (its own `[scenario.baseline]`).",
            s.name,
            allowed(&s.margins)
        );
    }
    md.push('\n');
    if checks.iter().any(|v| !v.passed()) {
        verdict_table(md, checks.iter().filter(|v| !v.passed()));
    }
}

/// `97.1 / 95.0 req/s (+2 %)`; a dash for a side without the figure.
fn delta(d: &Delta, unit: &str) -> String {
    let side = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.1}"));
    let change = d
        .change_pct
        .map(|c| format!(" ({c:+.0} %)"))
        .unwrap_or_default();
    format!("{} / {} {unit}{change}", side(d.now), side(d.baseline))
}

fn verdict_table<'a>(md: &mut String, verdicts: impl Iterator<Item = &'a VerdictReport>) {
    let _ = writeln!(md, "| | expected | measured |\n|---|---|---|");
    for v in verdicts {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            icon(v.outcome),
            cell(&v.expected),
            cell(&v.measured)
        );
    }
    md.push('\n');
}

/// Replicas (ready) and throughput per second on one chart; Mermaid's xychart has a
/// single y axis, so throughput is scaled into the replica range and the legend says
/// by how much.
fn chart(md: &mut String, s: &ScenarioReport) {
    let Some(load) = &s.load else { return };
    if load.timeline.is_empty() || s.timeline.samples.is_empty() {
        return;
    }
    let seconds = load.timeline.len();
    let replicas: Vec<u32> = (0..seconds)
        .map(|i| {
            let t = i as f64 + 1.0;
            s.timeline
                .samples
                .iter()
                .take_while(|x| x.t_s <= t)
                .last()
                // Before the first sample, the replicas it reports were already there.
                .or(s.timeline.samples.first())
                .map_or(0, |x| x.ready_replicas)
        })
        .collect();
    let max_rps = load
        .timeline
        .iter()
        .map(|x| x.requests)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let top = f64::from(s.bounds.max.max(1)) + 1.0;
    let scale = top / max_rps;
    let rps: Vec<String> = load
        .timeline
        .iter()
        .map(|x| format!("{:.2}", x.requests as f64 * scale))
        .collect();
    let reps: Vec<String> = replicas.iter().map(u32::to_string).collect();
    let _ = writeln!(
        md,
        "```mermaid\nxychart-beta\n    title \"{}: ready replicas (bars) and throughput (line, 1 unit = {:.0} req/s)\"\n    x-axis \"seconds\" 1 --> {}\n    y-axis \"replicas\" 0 --> {}\n    bar [{}]\n    line [{}]\n```\n",
        s.name,
        1.0 / scale,
        seconds,
        top,
        reps.join(", "),
        rps.join(", ")
    );
}

fn icon(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "✅",
        Outcome::Fail => "❌",
        Outcome::Error => "⚠️",
    }
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', "<br>")
}
