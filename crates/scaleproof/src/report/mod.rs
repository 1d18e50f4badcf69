//! Reports: what people and machines get from a run.
//!
//! - `junit.xml` for CI test UIs ([`junit`]),
//! - `report.json` for machines (this module's [`Report`], its own types converted
//!   from the harness's; `docs/report-schema.md` is generated from them by
//!   [`schema_doc`]),
//! - `summary.md` for the GitHub job summary ([`markdown`]),
//! - `timeline.svg` for people who would rather look than read ([`svg`]),
//! - a table on the terminal ([`table`]).
//!
//! Every writer takes the finished [`Report`]; none of them measures or judges.

pub mod baseline;
pub mod junit;
pub mod markdown;
mod model;
pub mod schema_doc;
pub mod svg;
pub mod table;

use std::path::{Path, PathBuf};

pub use model::*;

/// Bumped when a field changes meaning or disappears (adding fields does not bump it).
/// 2: a scenario's `error` became `{kind, message}` (was a string); `run.backend` is
/// null instead of `"none"` when no backend was chosen; a sample's desired and current
/// replicas are null before the HPA's first sync (were 0).
pub const SCHEMA_VERSION: u32 = 2;

/// `at` in RFC 3339, UTC, to the millisecond: precise enough to place a scenario's
/// load start among the simulated cluster's scrapes and syncs.
pub fn rfc3339_millis(at: std::time::SystemTime) -> String {
    let t = time::OffsetDateTime::from(at);
    let millis = t.nanosecond() / 1_000_000 * 1_000_000;
    let t = t.replace_nanosecond(millis).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}

/// Reads what [`rfc3339_millis`] wrote.
pub fn parse_rfc3339(text: &str) -> Option<std::time::SystemTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(std::time::SystemTime::from)
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a scaleproof report: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot render {what}: {message}")]
    Render { what: &'static str, message: String },
}

/// The process exit code of a run: documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every expectation held.
    Passed = 0,
    /// At least one expectation failed.
    ExpectationFailed = 1,
    /// Setup or infrastructure failed: nothing (or not everything) could be judged.
    InfrastructureError = 2,
}

impl Report {
    pub fn exit_status(&self) -> ExitStatus {
        let all: Vec<&VerdictReport> = self.all_verdicts().collect();
        let setup_failed = self.setup.iter().any(|s| !s.passed());
        let scenario_error = self.scenarios.iter().any(|s| s.error.is_some());
        if setup_failed || scenario_error || all.iter().any(|v| v.outcome == Outcome::Error) {
            ExitStatus::InfrastructureError
        } else if all.iter().any(|v| v.outcome == Outcome::Fail) {
            ExitStatus::ExpectationFailed
        } else {
            ExitStatus::Passed
        }
    }

    fn all_verdicts(&self) -> impl Iterator<Item = &VerdictReport> {
        self.scenarios
            .iter()
            .flat_map(|s| s.verdicts.iter())
            .chain(self.comparisons.iter())
            .chain(self.baseline.iter())
    }

    pub fn scenario(&self, name: &str) -> Option<&ScenarioReport> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    pub fn read(path: &Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ReportError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes `report.json`, `junit.xml`, `summary.md` and `timeline.svg` into `dir`
    /// and returns their paths. Each is written even if an earlier one failed; the
    /// first error is returned after all were attempted.
    pub fn write_all(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let json = serde_json::to_string_pretty(self).map_err(|e| ReportError::Render {
            what: "report.json",
            message: e.to_string(),
        });
        let outputs: [(&str, Result<String, ReportError>); 4] = [
            ("report.json", json),
            ("junit.xml", junit::render(self)),
            ("summary.md", Ok(markdown::render(self))),
            ("timeline.svg", svg::render(self)),
        ];
        let mut written = Vec::new();
        let mut first_error = None;
        for (name, content) in outputs {
            let path = dir.join(name);
            let result = content.and_then(|text| {
                std::fs::write(&path, text).map_err(|source| ReportError::Write {
                    path: path.clone(),
                    source,
                })
            });
            match result {
                Ok(()) => written.push(path),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }
}

#[cfg(test)]
mod tests;

/// Appends `markdown` to the GitHub Actions job summary, when running under Actions
/// (`GITHUB_STEP_SUMMARY` names the file); a failure to do so is only logged.
pub fn append_to_step_summary(markdown: &str) {
    let Ok(summary) = std::env::var("GITHUB_STEP_SUMMARY") else {
        return;
    };
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&summary)
        .and_then(|mut f| std::io::Write::write_all(&mut f, markdown.as_bytes()));
    if let Err(e) = appended {
        tracing::warn!("cannot append to GITHUB_STEP_SUMMARY ({summary}): {e}");
    }
}
