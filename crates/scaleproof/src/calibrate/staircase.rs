//! The calibration run as a stress config: the user's config with its scenarios
//! replaced by one open-loop staircase against one pod (the HPA pinned at 1), its
//! relative paths made absolute so the file can live in the output directory.

use std::path::Path;

use scaleproof_sim::program::LocalContainer;

/// The scenario's name, in the report and on the test binary's command line.
pub const SCENARIO: &str = "calibrate";

/// Rates from `from` to `to`, each `factor` times the one before, held `step_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Staircase {
    pub from: f64,
    pub to: f64,
    pub factor: f64,
    pub step_s: f64,
    /// Requests outstanding at most: past capacity the pod's queue stays this deep,
    /// so its latency stays under the client's timeout instead of every request
    /// failing, and a saturated step keeps completing at the pod's capacity.
    pub max_in_flight: u32,
}

/// Why a staircase or its config cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum StaircaseError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {message}")]
    Config { path: String, message: String },
}

impl Staircase {
    pub fn check(&self) -> Result<(), StaircaseError> {
        let bad = |m: String| Err(StaircaseError::Invalid(m));
        if !(self.from > 0.0 && self.from.is_finite()) {
            return bad(format!("--from must be a positive rate, not {}", self.from));
        }
        if !(self.to > self.from && self.to.is_finite()) {
            return bad(format!(
                "--to ({}) must be above --from ({})",
                self.to, self.from
            ));
        }
        if !(self.factor > 1.0 && self.factor <= 4.0) {
            return bad(format!(
                "--factor must be above 1 and at most 4, not {}",
                self.factor
            ));
        }
        if !(self.step_s >= 4.0 && self.step_s <= 600.0) {
            return bad(format!(
                "--step-s must be 4-600 s (a 1 s ramp, a settling second and at least 2 judged seconds), not {}",
                self.step_s
            ));
        }
        if self.rates().len() > 40 {
            return bad(format!(
                "{} steps from {} to {} by {}: at most 40; raise --factor or narrow the range",
                self.rates().len(),
                self.from,
                self.to,
                self.factor
            ));
        }
        Ok(())
    }

    /// The rates, rounded to 0.1 req/s, ending with the first at or above `to`.
    pub fn rates(&self) -> Vec<f64> {
        let mut rates = Vec::new();
        let mut rate = self.from;
        // Bounded: `check` refuses factors <= 1; 64 steps is far past any range.
        while rates.len() < 64 {
            let rounded = (rate * 10.0).round() / 10.0;
            rates.push(rounded);
            if rounded >= self.to {
                break;
            }
            rate *= self.factor;
        }
        rates
    }

    /// How long the load runs.
    pub fn duration_s(&self) -> f64 {
        self.rates().len() as f64 * self.step_s
    }

    /// The `[[scenario]]` table: per step a 1 s ramp to its rate and a hold.
    pub fn scenario(&self) -> toml::Table {
        let mut stages = Vec::new();
        for rate in self.rates() {
            for duration in [1.0, self.step_s - 1.0] {
                let mut stage = toml::Table::new();
                stage.insert("duration_s".into(), duration.into());
                stage.insert("rate".into(), rate.into());
                stages.push(toml::Value::Table(stage));
            }
        }
        let mut scenario = toml::Table::new();
        scenario.insert("name".into(), SCENARIO.into());
        scenario.insert(
            "description".into(),
            format!(
                "scaleproof calibrate: one pod, open-loop steps {} to {} req/s (x{} every {} s)",
                self.from, self.to, self.factor, self.step_s
            )
            .into(),
        );
        scenario.insert("stages".into(), toml::Value::Array(stages));
        scenario.insert("max_in_flight".into(), i64::from(self.max_in_flight).into());
        scenario.insert("hpa".into(), pinned_at_one());
        scenario
    }
}

/// `[scenario.hpa]` pinning the HPA at one replica: calibration measures one pod.
pub(super) fn pinned_at_one() -> toml::Value {
    let mut hpa = toml::Table::new();
    hpa.insert("min_replicas".into(), 1.into());
    hpa.insert("max_replicas".into(), 1.into());
    toml::Value::Table(hpa)
}

/// The user's config (`text`, read from `path`) with `scenarios` instead of its
/// own, no `[[compare]]`, and every relative path made absolute against its
/// directory, so the result can be written anywhere.
pub fn config_with(
    path: &Path,
    text: &str,
    scenarios: Vec<toml::Table>,
) -> Result<String, StaircaseError> {
    let err = |message: String| StaircaseError::Config {
        path: path.display().to_string(),
        message,
    };
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(e.to_string()))?;
    let base = std::path::absolute(path.parent().unwrap_or(Path::new(".")))
        .map_err(|e| err(format!("cannot make its directory absolute: {e}")))?;
    table.remove("scenario");
    table.remove("compare");
    if let Some(toml::Value::Table(target)) = table.get_mut("target") {
        let manifests = target
            .get("manifests")
            .and_then(toml::Value::as_str)
            .unwrap_or("k8s")
            .to_string();
        target.insert(
            "manifests".into(),
            base.join(manifests).display().to_string().into(),
        );
    }
    let containers = table
        .get_mut("backend")
        .and_then(|b| b.get_mut("local"))
        .and_then(|l| l.get_mut("containers"))
        .and_then(toml::Value::as_table_mut);
    if let Some(containers) = containers {
        for (name, entry) in containers.iter_mut() {
            let parsed: LocalContainer =
                entry.clone().try_into().map_err(|e: toml::de::Error| {
                    err(format!("[backend.local.containers.{name}]: {e}"))
                })?;
            *entry = toml::Value::try_from(parsed.resolved(&base))
                .map_err(|e| err(format!("[backend.local.containers.{name}]: {e}")))?;
        }
    }
    table.insert(
        "scenario".into(),
        toml::Value::Array(scenarios.into_iter().map(toml::Value::Table).collect()),
    );
    toml::to_string(&table).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stairs() -> Staircase {
        Staircase {
            from: 2.0,
            to: 100.0,
            factor: 1.5,
            step_s: 6.0,
            max_in_flight: 40,
        }
    }

    #[test]
    fn the_rates_climb_by_the_factor_until_the_top() {
        assert_eq!(
            stairs().rates(),
            [
                2.0, 3.0, 4.5, 6.8, 10.1, 15.2, 22.8, 34.2, 51.3, 76.9, 115.3
            ]
        );
        assert_eq!(stairs().duration_s(), 66.0);
        stairs().check().expect("valid");
    }

    #[test]
    fn a_staircase_that_cannot_measure_is_refused_with_the_flag_to_change() {
        for (change, flag) in [
            (
                Staircase {
                    from: 0.0,
                    ..stairs()
                },
                "--from",
            ),
            (
                Staircase {
                    to: 1.0,
                    ..stairs()
                },
                "--to",
            ),
            (
                Staircase {
                    factor: 1.0,
                    ..stairs()
                },
                "--factor",
            ),
            (
                Staircase {
                    step_s: 3.0,
                    ..stairs()
                },
                "--step-s",
            ),
            (
                Staircase {
                    factor: 1.01,
                    ..stairs()
                },
                "at most 40",
            ),
        ] {
            let message = change.check().expect_err("invalid").to_string();
            assert!(message.contains(flag), "{message}");
        }
    }

    #[test]
    fn the_calibration_config_is_the_users_with_one_pinned_staircase_and_absolute_paths() {
        let text = r#"
[target]
namespace = "x"
deployment = "d"
hpa = "h"
manifests = "k8s"
[backend.local.containers.app]
command = [".venv/bin/python", "-m", "uvicorn"]
workdir = "."
[backend.local.containers.other]
cargo_bin = { package = "iris-server" }
[[scenario]]
name = "old"
requests = 1
[[compare]]
name = "gain"
"#;
        let out = config_with(
            Path::new("/repo/examples/app/stress.toml"),
            text,
            vec![stairs().scenario()],
        )
        .expect("config");
        let table: toml::Table = out.parse().expect("TOML");
        assert_eq!(
            table["target"]["manifests"].as_str(),
            Some("/repo/examples/app/k8s")
        );
        let app = &table["backend"]["local"]["containers"]["app"];
        assert_eq!(
            app["command"][0].as_str(),
            Some("/repo/examples/app/.venv/bin/python")
        );
        assert_eq!(app["workdir"].as_str(), Some("/repo/examples/app/."));
        assert_eq!(
            table["backend"]["local"]["containers"]["other"]["cargo_bin"]["package"].as_str(),
            Some("iris-server")
        );
        assert!(table.get("compare").is_none());
        let scenarios = table["scenario"].as_array().expect("scenarios");
        assert_eq!(scenarios.len(), 1);
        assert_eq!(scenarios[0]["name"].as_str(), Some(SCENARIO));
        assert_eq!(scenarios[0]["hpa"]["max_replicas"].as_integer(), Some(1));
        assert_eq!(scenarios[0]["stages"].as_array().map(Vec::len), Some(22));
    }

    /// What calibrate writes must be a config the gate accepts as it is.
    #[test]
    fn the_gate_accepts_the_calibration_config() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let path = root.join("stress.toml");
        let text = std::fs::read_to_string(&path).expect("stress.toml");
        let out = config_with(
            &path,
            &text,
            vec![
                stairs().scenario(),
                super::super::reference::scenario(&stairs()),
            ],
        )
        .expect("config");
        let config =
            crate::scenario::StressConfig::parse(Path::new("/elsewhere/calibrate.toml"), &out)
                .unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert_eq!(config.scenarios.len(), 2);
        // The reference is a closed loop of the staircase's depth that outlasts it.
        let reference = config
            .scenario(super::super::reference::SCENARIO)
            .expect("the reference scenario");
        assert_eq!(
            reference.load.stop(),
            scaleproof_load::Stop::Duration(std::time::Duration::from_secs_f64(
                stairs().duration_s() + super::super::reference::SLACK_S
            ))
        );
        assert!(matches!(
            reference.load,
            scaleproof_load::Mode::Closed {
                concurrency: 40,
                ..
            }
        ));
        assert!(config.manifests_dir().join("deployment.yaml").is_file());
    }
}
