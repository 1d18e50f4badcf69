//! The human-readable end-of-run summary (`Display` for [`LoadResult`]).

use std::fmt;

use super::result::{LatencySummary, LoadMode, LoadResult};

impl fmt::Display for LoadResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let promised = &self.promised;
        match self.mode {
            LoadMode::Closed => write!(
                f,
                "Closed loop, {} workers",
                promised.concurrency.unwrap_or_default()
            )?,
            LoadMode::Open => {
                write!(
                    f,
                    "Open loop, {} req/s",
                    promised.rate_per_s.unwrap_or_default()
                )?;
                if let (Some(to), Some(over)) = (promised.ramp_to_per_s, promised.ramp_over_s) {
                    write!(f, " ramping to {to} req/s over {over} s")?;
                }
                write!(
                    f,
                    ", at most {} in flight",
                    promised.max_in_flight.unwrap_or_default()
                )?;
            }
        }
        if let Some(requests) = promised.requests {
            write!(f, ", {requests} requests")?;
        }
        if let Some(duration) = promised.duration_s {
            write!(f, ", {duration} s")?;
        }
        writeln!(f, "{}", if self.cancelled { " (cancelled)" } else { "" })?;
        for stage in &self.stages {
            let unit = match promised.stages.as_ref().map(|s| s.ramped) {
                Some(crate::config::Ramped::Rate) => " req/s",
                _ => " workers",
            };
            writeln!(
                f,
                "  Stage {} ({:.0}-{:.0} s): {}{unit} -> {}{unit}, sent {}{}",
                stage.number,
                stage.start_s,
                stage.end_s,
                stage.from,
                stage.to,
                stage.sent,
                if stage.late + stage.dropped > 0 {
                    format!(" (late {}, dropped {})", stage.late, stage.dropped)
                } else {
                    String::new()
                }
            )?;
        }

        writeln!(
            f,
            "  Sent {}: ok {}, failed {}, success rate {:.2} %",
            self.sent,
            self.ok,
            self.failed,
            self.success_rate * 100.0
        )?;
        writeln!(
            f,
            "  Duration {:.2} s, throughput {:.1} req/s",
            self.duration_s, self.throughput_per_s
        )?;
        if self.mode == LoadMode::Open {
            writeln!(f, "  Late {}, dropped {}", self.late, self.dropped)?;
        }

        writeln!(
            f,
            "  Latency (ms)      min     mean      p50      p90      p95      p99    p99.9      max"
        )?;
        let corrected_label = match self.mode {
            LoadMode::Open => "from intended",
            LoadMode::Closed => "all",
        };
        latency_row(f, corrected_label, self.latency_ms.as_ref())?;
        if self.mode == LoadMode::Open {
            latency_row(f, "service time", self.service_time_ms.as_ref())?;
        }

        let statuses: Vec<String> = self
            .status_counts
            .iter()
            .map(|(status, count)| format!("{status}: {count}"))
            .collect();
        let statuses = if statuses.is_empty() {
            "none".to_owned()
        } else {
            statuses.join(", ")
        };
        writeln!(f, "  Status codes: {statuses}")?;
        let e = &self.errors;
        writeln!(
            f,
            "  Errors: timeout {}, connection refused {}, connection reset {}, other {}",
            e.timeout, e.connection_refused, e.connection_reset, e.other
        )?;
        match &self.shortfall {
            None => write!(f, "  Delivered as promised: yes"),
            Some(shortfall) => write!(
                f,
                "  Delivered as promised: NO ({})",
                shortfall.reasons.join("; ")
            ),
        }
    }
}

fn latency_row(
    f: &mut fmt::Formatter<'_>,
    label: &str,
    summary: Option<&LatencySummary>,
) -> fmt::Result {
    let Some(s) = summary else {
        return writeln!(f, "    {label:<13} (no responses)");
    };
    writeln!(
        f,
        "    {label:<13}{:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        s.min_ms, s.mean_ms, s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms, s.p99_9_ms, s.max_ms
    )
}
