//! Disruptions timed from the start of each scenario's load: what
//! `[[backend.local.disruptions]]` plays, so a stress config can rehearse a flaky
//! cluster end to end, not only the tests that drive [`crate::SimCluster`] by hand.
//!
//! "The start of the load" is, as the cluster sees it, an HPA created again under a
//! name it had before: the harness's reset before each scenario deletes the HPA and
//! ends by applying the scenario's, and the load starts right after. (The first
//! apply, at setup, is no load start.) Each disruption is played once per such
//! re-creation, `after_s` later.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::api::ApiState;
use super::api::resource::{FieldSelector, Resource, Selector};

/// One disruption of `[[backend.local.disruptions]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disruption {
    /// `metrics-server-restart` (its APIService unavailable, PodMetrics gone, back
    /// `down_s` later plus two scrapes), `end-watches` (every watch stream ended), or
    /// `end-watches-410` (ended, and the history compacted: resumes get 410 Gone).
    pub kind: DisruptionKind,
    /// Seconds after each scenario's load starts (its HPA applied).
    #[serde(default)]
    pub after_s: f64,
    /// `metrics-server-restart`: how long it stays down before its new process starts.
    #[serde(default)]
    pub down_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DisruptionKind {
    MetricsServerRestart,
    EndWatches,
    #[serde(rename = "end-watches-410")]
    EndWatches410,
}

impl Disruption {
    /// Whether it can be played; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=3600.0).contains(&self.after_s) {
            return Err(format!("after_s = {}: 0 to 3600 seconds", self.after_s));
        }
        match (self.kind, self.down_s) {
            (DisruptionKind::MetricsServerRestart, None) => {
                Err("down_s: a metrics-server restart needs how long it is down".into())
            }
            (DisruptionKind::MetricsServerRestart, Some(d)) if !(0.0..=3600.0).contains(&d) => {
                Err(format!("down_s = {d}: 0 to 3600 seconds"))
            }
            (DisruptionKind::EndWatches | DisruptionKind::EndWatches410, Some(_)) => {
                Err("down_s: only a metrics-server restart has one".into())
            }
            _ => Ok(()),
        }
    }
}

/// What a disruption acts on.
pub struct Targets {
    pub state: Arc<ApiState>,
    pub metrics_restarts: tokio::sync::mpsc::UnboundedSender<Duration>,
}

/// Plays `plan` after every HPA creation until `cancel`.
pub async fn run(plan: Vec<Disruption>, targets: Targets, cancel: CancellationToken) {
    if plan.is_empty() {
        return;
    }
    let store = Arc::clone(&targets.state.store);
    let targets = Arc::new(targets);
    let mut changed = store.subscribe();
    // (namespace/name, uid) of every HPA seen; a new uid under a known name is a reset.
    let mut seen = hpas(&targets.state);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            result = changed.changed() => if result.is_err() { return },
        }
        let now = hpas(&targets.state);
        let recreated = now
            .iter()
            .filter(|(name, uid)| {
                !seen.contains(&(name.clone(), uid.clone()))
                    && seen.iter().any(|(known, _)| known == name)
            })
            .count();
        seen.extend(now);
        for _ in 0..recreated {
            for disruption in plan.clone() {
                let targets = Arc::clone(&targets);
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = tokio::time::sleep(Duration::from_secs_f64(disruption.after_s)) => {
                            play(&disruption, &targets);
                        }
                    }
                });
            }
        }
    }
}

fn play(disruption: &Disruption, targets: &Targets) {
    tracing::info!("disruption: {:?}", disruption.kind);
    match disruption.kind {
        DisruptionKind::MetricsServerRestart => {
            let down = Duration::from_secs_f64(disruption.down_s.unwrap_or(0.0));
            // The scraper ends only with the cluster; then there is nothing to restart.
            let _ = targets.metrics_restarts.send(down);
        }
        DisruptionKind::EndWatches => targets.state.end_watches(false),
        DisruptionKind::EndWatches410 => targets.state.end_watches(true),
    }
}

/// `(namespace/name, uid)` of every HPA.
fn hpas(state: &ApiState) -> BTreeSet<(String, String)> {
    let (hpas, _) = state.store.list(
        Resource::HorizontalPodAutoscaler,
        None,
        &Selector::default(),
        &FieldSelector::default(),
    );
    hpas.iter()
        .filter_map(|h| {
            let meta = &h["metadata"];
            Some((
                format!("{}/{}", meta["namespace"].as_str()?, meta["name"].as_str()?),
                meta["uid"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disruption_is_checked_naming_its_field() {
        let restart = Disruption {
            kind: DisruptionKind::MetricsServerRestart,
            after_s: 2.0,
            down_s: Some(5.0),
        };
        assert_eq!(restart.check(), Ok(()));
        let without_down = Disruption {
            down_s: None,
            ..restart.clone()
        };
        assert!(
            without_down
                .check()
                .expect_err("refused")
                .starts_with("down_s")
        );
        let watches_with_down = Disruption {
            kind: DisruptionKind::EndWatches,
            ..restart.clone()
        };
        assert!(
            watches_with_down
                .check()
                .expect_err("refused")
                .starts_with("down_s")
        );
        let negative = Disruption {
            after_s: -1.0,
            ..restart
        };
        assert!(
            negative
                .check()
                .expect_err("refused")
                .starts_with("after_s")
        );
        let parsed: Disruption =
            serde_json::from_value(serde_json::json!({"kind": "end-watches-410", "after_s": 3}))
                .expect("parses");
        assert_eq!(parsed.kind, DisruptionKind::EndWatches410);
    }
}
