//! `[[scenario.stages]]`: a load in stages, as k6's `stages`. Each stage names its
//! length and the level it ramps to from the previous stage's (the first from 0):
//! a closed-loop `concurrency` or an open-loop `rate`, the same for every stage of
//! a scenario. A stage may have a `name`, which `expect.scale_down_from` refers to.
//!
//! ```toml
//! [[scenario.stages]]
//! duration_s = 10
//! rate = 100          # ramp 0 -> 100 req/s over 10 s
//! [[scenario.stages]]
//! name = "trickle"
//! duration_s = 2
//! rate = 4            # drop to 4 req/s
//! ```

use std::time::Duration;

use scaleproof_load::{Ramped, Stage, Stages};
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Locator, MAX_SECONDS};

/// One `[[scenario.stages]]` table as written.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStage {
    name: Option<Spanned<String>>,
    duration_s: Spanned<f64>,
    rate: Option<Spanned<f64>>,
    concurrency: Option<Spanned<u32>>,
}

/// Validated stages, with their names.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedStages {
    pub stages: Stages,
    /// One per stage; `None` where the stage has no name.
    pub names: Vec<Option<String>>,
}

impl NamedStages {
    /// When the stage called `name` starts, seconds from the load's start.
    pub fn start_of(&self, name: &str) -> Option<f64> {
        let index = self.names.iter().position(|n| n.as_deref() == Some(name))?;
        self.stages.bounds(index).map(|(start, ..)| start)
    }
}

pub(super) fn validate(
    at: &Locator<'_>,
    key: &str,
    raw: &[RawStage],
) -> Result<NamedStages, ConfigError> {
    if raw.is_empty() {
        return Err(at.error(
            None,
            key,
            "has no stages; give at least one, or remove `stages`",
        ));
    }
    let mut ramped = None;
    let mut stages = Vec::new();
    let mut names: Vec<Option<String>> = Vec::new();
    for (i, stage) in raw.iter().enumerate() {
        let here = format!("{key}[{i}]");
        let duration = *stage.duration_s.get_ref();
        if !(duration.is_finite() && duration > 0.0 && duration <= MAX_SECONDS) {
            return Err(at.error(
                Some(stage.duration_s.span()),
                &format!("{here}.duration_s"),
                format!(
                    "must be a positive number of seconds (at most {MAX_SECONDS}), got {duration}"
                ),
            ));
        }
        let (kind, target) = match (&stage.rate, &stage.concurrency) {
            (Some(rate), None) => {
                let r = *rate.get_ref();
                if !(r.is_finite() && (0.0..=1.0e6).contains(&r)) {
                    return Err(at.error(
                        Some(rate.span()),
                        &format!("{here}.rate"),
                        format!("must be a number of requests per second >= 0, got {r}"),
                    ));
                }
                (Ramped::Rate, r)
            }
            (None, Some(c)) => (Ramped::Concurrency, f64::from(*c.get_ref())),
            (Some(_), Some(c)) => {
                return Err(at.error(
                    Some(c.span()),
                    &format!("{here}.concurrency"),
                    "conflicts with `rate`: a stage ramps one of them",
                ));
            }
            (None, None) => {
                return Err(at.error(
                    Some(stage.duration_s.span()),
                    &here,
                    "needs `rate` (open loop) or `concurrency` (closed loop): the level to ramp to",
                ));
            }
        };
        match ramped {
            None => ramped = Some(kind),
            Some(first) if first != kind => {
                let (span, field) = match (&stage.rate, &stage.concurrency) {
                    (Some(r), _) => (r.span(), "rate"),
                    (_, Some(c)) => (c.span(), "concurrency"),
                    _ => (stage.duration_s.span(), "duration_s"),
                };
                return Err(at.error(
                    Some(span),
                    &format!("{here}.{field}"),
                    "every stage of a scenario ramps the same thing: all `rate` (open loop) or all \
                     `concurrency` (closed loop)",
                ));
            }
            Some(_) => {}
        }
        if let Some(name) = &stage.name {
            let n = name.get_ref().trim();
            if n.is_empty() || names.iter().flatten().any(|other| other == n) {
                return Err(at.error(
                    Some(name.span()),
                    &format!("{here}.name"),
                    format!("must be non-empty and unique among the stages, got {n:?}"),
                ));
            }
        }
        names.push(stage.name.as_ref().map(|n| n.get_ref().trim().to_string()));
        stages.push(Stage {
            duration: Duration::from_secs_f64(duration),
            target,
        });
    }
    let stages = Stages {
        ramped: ramped.unwrap_or(Ramped::Rate),
        start: 0.0,
        stages,
    };
    if stages.peak() <= 0.0 {
        return Err(at.error(None, key, "every stage's level is 0: nothing would be sent"));
    }
    Ok(NamedStages { stages, names })
}
