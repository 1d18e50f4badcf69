//! Runs a load: sets up the shared context, starts the closed or open loop and
//! the progress display, and turns the tally into a [`LoadResult`].

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::RequestTemplate;
use super::config::{LoadConfig, Mode, Progress, Ramped, Stages, Stop};
use super::context::RunContext;
use super::open::Dropped;
use super::progress::ProgressTask;
use super::recorder::Recorder;
use super::recorder::StageCount;
use super::result::{LoadMode, LoadResult, Promised, StageResult};
use super::schedule::Schedule;
use super::targets::Targets;
use super::{LoadError, closed, open};

/// Sends load to `targets` as `config` says, until its stop condition or until
/// `cancel` is cancelled; requests in flight then complete and are counted.
///
/// Errors only for an invalid configuration or a worker that panicked; failed
/// requests (refused, timed out, 5xx) are measurements, found in the result.
pub async fn run(
    config: &LoadConfig,
    targets: &Targets,
    cancel: &CancellationToken,
) -> Result<LoadResult, LoadError> {
    config.validate()?;
    let template = Arc::new(RequestTemplate::new(config));
    // Corrected latency may include waiting up to a timeout for a free worker.
    let recorder = Arc::new(Recorder::new(config.timeout * 2));
    let promised = promised(config);
    let start = Instant::now();
    let context = Arc::new(RunContext::new(
        start,
        config.clone(),
        targets.clone(),
        template,
        Arc::clone(&recorder),
        cancel.clone(),
    ));
    if cancel.is_cancelled() {
        context.stop();
    }
    let mirror = {
        let context = Arc::clone(&context);
        tokio::spawn(async move {
            context.cancel.cancelled().await;
            context.stop();
        })
    };
    let progress = (config.progress == Progress::Auto)
        .then(|| ProgressTask::start(Arc::clone(&recorder), start, promised.requests));

    let none_dropped = || Dropped {
        total: 0,
        per_stage: Vec::new(),
    };
    let outcome = match &config.mode {
        Mode::Closed { concurrency, stop } => closed::run(context, *concurrency, *stop)
            .await
            .map(|()| none_dropped()),
        Mode::Open {
            rate,
            stop,
            max_in_flight,
        } => open::run(context, Schedule::new(*rate), None, *stop, *max_in_flight).await,
        Mode::Staged {
            stages,
            max_in_flight,
        } => match stages.ramped {
            Ramped::Concurrency => closed::run_staged(context, stages.clone())
                .await
                .map(|()| none_dropped()),
            Ramped::Rate => {
                let schedule = Schedule::staged(stages);
                let stop = config.mode.stop();
                open::run(
                    context,
                    schedule,
                    Some(stages.clone()),
                    stop,
                    *max_in_flight,
                )
                .await
            }
        },
    };
    let duration = start.elapsed();
    mirror.abort();
    if let Some(progress) = progress {
        progress.finish().await;
    }
    let dropped = outcome?;

    let totals = recorder.totals();
    let duration_s = duration.as_secs_f64();
    let stages = match &config.mode {
        Mode::Staged { stages, .. } => stage_results(stages, &totals.stages, &dropped.per_stage),
        _ => Vec::new(),
    };
    let mut result = LoadResult {
        mode: if config.mode.is_open() {
            LoadMode::Open
        } else {
            LoadMode::Closed
        },
        promised,
        cancelled: cancel.is_cancelled(),
        sent: totals.sent,
        ok: totals.ok,
        failed: totals.sent - totals.ok,
        status_counts: totals.status_counts,
        errors: totals.errors,
        success_rate: ratio(totals.ok, totals.sent),
        throughput_per_s: if duration_s > 0.0 {
            totals.sent as f64 / duration_s
        } else {
            0.0
        },
        duration_s,
        late: totals.late,
        dropped: dropped.total,
        latency_ms: totals.latency_ms,
        service_time_ms: totals.service_time_ms,
        timeline: totals.timeline,
        stages,
        shortfall: None,
    };
    result.shortfall = result.assess();
    Ok(result)
}

/// Each stage's promise and delivery.
fn stage_results(stages: &Stages, counts: &[StageCount], dropped: &[u64]) -> Vec<StageResult> {
    let schedule = (stages.ramped == Ramped::Rate).then(|| Schedule::staged(stages));
    (0..stages.stages.len())
        .filter_map(|i| {
            let (start_s, end_s, from, to) = stages.bounds(i)?;
            let count = counts.get(i).copied().unwrap_or_default();
            let promised = schedule.as_ref().map(|s| {
                s.due_before(std::time::Duration::from_secs_f64(end_s))
                    - s.due_before(std::time::Duration::from_secs_f64(start_s))
            });
            Some(StageResult {
                number: i + 1,
                start_s,
                end_s,
                from,
                to,
                promised,
                sent: count.sent,
                late: count.late,
                dropped: dropped.get(i).copied().unwrap_or_default(),
            })
        })
        .collect()
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn promised(config: &LoadConfig) -> Promised {
    let stop = config.mode.stop();
    let duration_s = match stop {
        Stop::Duration(d) => Some(d.as_secs_f64()),
        Stop::Requests(_) => None,
    };
    let mut promised = Promised {
        requests: None,
        duration_s,
        concurrency: None,
        rate_per_s: None,
        ramp_to_per_s: None,
        ramp_over_s: None,
        max_in_flight: None,
        late_after_ms: None,
        timeout_s: config.timeout.as_secs_f64(),
        stages: None,
    };
    match &config.mode {
        Mode::Closed { concurrency, stop } => {
            promised.concurrency = Some(*concurrency);
            if let Stop::Requests(n) = stop {
                promised.requests = Some(*n);
            }
        }
        Mode::Staged {
            stages,
            max_in_flight,
        } => {
            promised.stages = Some(stages.clone());
            match stages.ramped {
                Ramped::Concurrency => {
                    promised.concurrency = Some(stages.peak().ceil() as u32);
                }
                Ramped::Rate => {
                    promised.requests = Some(Schedule::staged(stages).total(stop));
                    promised.rate_per_s = Some(stages.start);
                    promised.max_in_flight = Some(*max_in_flight);
                    promised.late_after_ms = Some(config.late_after.as_secs_f64() * 1000.0);
                }
            }
        }
        Mode::Open {
            rate,
            stop,
            max_in_flight,
        } => {
            let (rate, stop, max_in_flight) = (*rate, *stop, *max_in_flight);
            promised.requests = Some(Schedule::new(rate).total(stop));
            promised.rate_per_s = Some(rate.start_per_s);
            if rate.is_ramp() {
                promised.ramp_to_per_s = Some(rate.end_per_s);
                promised.ramp_over_s = Some(rate.ramp.as_secs_f64());
            }
            promised.max_in_flight = Some(max_in_flight);
            promised.late_after_ms = Some(config.late_after.as_secs_f64() * 1000.0);
        }
    }
    promised
}
