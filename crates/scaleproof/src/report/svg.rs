//! `timeline.svg`: per scenario, four panels over time: replicas (desired and
//! ready), CPU utilization against its target (or, for an HPA with more metrics than
//! cpu, each metric in percent of its own target), throughput, and p95 latency.

use plotters::prelude::*;

use super::{Report, ReportError, ScenarioReport};

const PANEL_W: u32 = 420;
const PANEL_H: u32 = 260;

pub fn render(report: &Report) -> Result<String, ReportError> {
    let mut svg = String::new();
    let rows = report.scenarios.len().max(1) as u32;
    {
        let root =
            SVGBackend::with_string(&mut svg, (PANEL_W * 4, PANEL_H * rows)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        if report.scenarios.is_empty() {
            root.draw(&Text::new("no scenario ran", (20, 20), ("sans-serif", 18)))
                .map_err(err)?;
        }
        let rows = root.split_evenly((report.scenarios.len().max(1), 1));
        for (row, scenario) in rows.iter().zip(&report.scenarios) {
            let panels = row.split_evenly((1, 4));
            replicas_panel(&panels[0], scenario)?;
            cpu_panel(&panels[1], scenario)?;
            throughput_panel(&panels[2], scenario)?;
            latency_panel(&panels[3], scenario)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Render {
        what: "timeline.svg",
        message: e.to_string(),
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// The time span a scenario's panels share: from the first sample (or 0) to the end
/// of the load or the last sample, whichever is later.
fn time_span(s: &ScenarioReport) -> (f64, f64) {
    let first = s.timeline.samples.first().map_or(0.0, |x| x.t_s).min(0.0);
    let last_sample = s.timeline.samples.last().map_or(0.0, |x| x.t_s);
    let load_end = s.load.as_ref().map_or(0.0, |l| l.duration_s);
    (first, last_sample.max(load_end).max(1.0))
}

fn panel<'a>(
    area: &Area<'a>,
    title: &str,
    x: (f64, f64),
    y_max: f64,
    y_label: &str,
    y_ticks: usize,
) -> Result<
    ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    ReportError,
> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(x.0..x.1, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since load start")
        .y_desc(y_label)
        .y_labels(y_ticks)
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

fn replicas_panel(area: &Area<'_>, s: &ScenarioReport) -> Result<(), ReportError> {
    let y_max = f64::from(s.bounds.max.max(s.timeline.peak_desired_replicas()).max(1)) + 1.0;
    let mut chart = panel(
        area,
        &format!("{}: replicas", s.name),
        time_span(s),
        y_max,
        "replicas",
        y_max as usize + 1,
    )?;
    let desired = steps(
        s.timeline
            .samples
            .iter()
            .filter_map(|x| Some((x.t_s, f64::from(x.desired_replicas?)))),
    );
    let ready = steps(
        s.timeline
            .samples
            .iter()
            .map(|x| (x.t_s, f64::from(x.ready_replicas))),
    );
    chart
        .draw_series(LineSeries::new(desired, BLUE.stroke_width(2)))
        .map_err(err)?
        .label("desired")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE));
    chart
        .draw_series(LineSeries::new(ready, GREEN.stroke_width(2)))
        .map_err(err)?
        .label("ready")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], GREEN));
    // A scale-down in progress: pods deleted and still stopping.
    if s.timeline
        .samples
        .iter()
        .any(|x| x.terminating_replicas > 0)
    {
        let terminating = steps(
            s.timeline
                .samples
                .iter()
                .map(|x| (x.t_s, f64::from(x.terminating_replicas))),
        );
        chart
            .draw_series(LineSeries::new(terminating, MAGENTA.stroke_width(2)))
            .map_err(err)?
            .label("terminating")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], MAGENTA));
    }
    let (x0, x1) = time_span(s);
    let max = f64::from(s.bounds.max);
    chart
        .draw_series(LineSeries::new(vec![(x0, max), (x1, max)], RED.mix(0.5)))
        .map_err(err)?
        .label("maxReplicas")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED.mix(0.5)));
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// Replica counts hold between samples: draw them as steps, not slopes.
fn steps(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (t, v) in points {
        if let Some(&(_, previous)) = out.last() {
            out.push((t, previous));
        }
        out.push((t, v));
    }
    out
}

fn cpu_panel(area: &Area<'_>, s: &ScenarioReport) -> Result<(), ReportError> {
    // An HPA with more than cpu: every metric against its own target instead.
    if s.timeline
        .samples
        .iter()
        .any(|x| x.metrics.iter().any(|m| m.name != "cpu"))
    {
        return metrics_panel(area, s);
    }
    let points: Vec<(f64, f64)> = s
        .timeline
        .samples
        .iter()
        .filter_map(|x| x.cpu_utilization_pct.map(|u| (x.t_s, f64::from(u))))
        .collect();
    let target = s
        .timeline
        .samples
        .first()
        .map_or(50.0, |x| f64::from(x.cpu_target_pct));
    let y_max = points.iter().map(|p| p.1).fold(target * 2.0, f64::max) * 1.1;
    let mut chart = panel(
        area,
        "CPU utilization (% of request)",
        time_span(s),
        y_max,
        "%",
        6,
    )?;
    chart
        .draw_series(LineSeries::new(points, MAGENTA.stroke_width(2)))
        .map_err(err)?
        .label("utilization")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], MAGENTA));
    let (x0, x1) = time_span(s);
    chart
        .draw_series(LineSeries::new(
            vec![(x0, target), (x1, target)],
            BLACK.mix(0.6),
        ))
        .map_err(err)?
        .label("target")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLACK.mix(0.6)));
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// Current over target of a metric, in percent (100: at target).
fn percent_of_target(m: &super::model::MetricReport) -> Option<f64> {
    match (m.target_utilization_pct, m.target_average_value) {
        (Some(target), _) if target > 0 => m
            .current_utilization_pct
            .map(|u| f64::from(u) * 100.0 / f64::from(target)),
        (None, Some(target)) if target > 0.0 => m.current_average_value.map(|v| v * 100.0 / target),
        _ => None,
    }
}

/// Each HPA metric as a percentage of its own target, so metrics of different units
/// share one panel and the one furthest above 100 % is the one driving a scale-up.
fn metrics_panel(area: &Area<'_>, s: &ScenarioReport) -> Result<(), ReportError> {
    let mut names: Vec<&str> = Vec::new();
    for m in s.timeline.samples.iter().flat_map(|x| &x.metrics) {
        if !names.contains(&m.name.as_str()) {
            names.push(&m.name);
        }
    }
    let series: Vec<(&str, Vec<(f64, f64)>)> = names
        .iter()
        .map(|name| {
            let points = s
                .timeline
                .samples
                .iter()
                .filter_map(|x| {
                    let m = x.metrics.iter().find(|m| m.name == *name)?;
                    Some((x.t_s, percent_of_target(m)?))
                })
                .collect();
            (*name, points)
        })
        .collect();
    let y_max = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(200.0, f64::max)
        * 1.1;
    let mut chart = panel(
        area,
        "HPA metrics (% of each target)",
        time_span(s),
        y_max,
        "%",
        6,
    )?;
    let colors = [MAGENTA, BLUE, GREEN, RED, CYAN];
    for (i, (name, points)) in series.into_iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
    }
    let (x0, x1) = time_span(s);
    chart
        .draw_series(LineSeries::new(
            vec![(x0, 100.0), (x1, 100.0)],
            BLACK.mix(0.6),
        ))
        .map_err(err)?
        .label("target")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLACK.mix(0.6)));
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn throughput_panel(area: &Area<'_>, s: &ScenarioReport) -> Result<(), ReportError> {
    let seconds = s
        .load
        .as_ref()
        .map(|l| l.timeline.as_slice())
        .unwrap_or_default();
    let points: Vec<(f64, f64)> = seconds.iter().map(|x| (x.t_s, x.requests as f64)).collect();
    let errors: Vec<(f64, f64)> = seconds.iter().map(|x| (x.t_s, x.errors as f64)).collect();
    let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut chart = panel(area, "throughput", time_span(s), y_max, "requests / s", 6)?;
    chart
        .draw_series(LineSeries::new(points, CYAN.stroke_width(2)))
        .map_err(err)?
        .label("requests")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], CYAN));
    chart
        .draw_series(LineSeries::new(errors, RED.stroke_width(1)))
        .map_err(err)?
        .label("errors")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED));
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn latency_panel(area: &Area<'_>, s: &ScenarioReport) -> Result<(), ReportError> {
    let seconds = s
        .load
        .as_ref()
        .map(|l| l.timeline.as_slice())
        .unwrap_or_default();
    let points: Vec<(f64, f64)> = seconds
        .iter()
        .filter_map(|x| x.p95_ms.map(|p| (x.t_s, p)))
        .collect();
    let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut chart = panel(area, "p95 latency", time_span(s), y_max, "ms", 6)?;
    chart
        .draw_series(LineSeries::new(
            points,
            RGBColor(230, 120, 0).stroke_width(2),
        ))
        .map_err(err)?
        .label("p95")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RGBColor(230, 120, 0)));
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn legend<'a>(
    chart: &mut ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    position: SeriesLabelPosition,
) -> Result<(), ReportError> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 11))
        .position(position)
        .draw()
        .map_err(err)
}
