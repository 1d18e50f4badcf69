//! The hand-over from the orchestrator (`scaleproof stress`) to the scenario tests:
//! one typed, versioned file, `<out>/handover.json`, named by one environment
//! variable ([`VAR`]).
//!
//! The scenario tests are separate processes (Rust integration tests, as the mission
//! asks), so the prepared backend has to cross a process boundary. A file rather than
//! many variables: it is written and read by the same type, carries a version, and is
//! left in the artifacts, so a failed run shows exactly what its tests were given.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
pub use crate::backend::Target;

/// The environment variable that names the hand-over file. The only one.
pub const VAR: &str = "SCALEPROOF_HANDOVER";

/// Bumped whenever a field changes; a test binary from another build refuses a
/// hand-over of another version instead of misreading it.
pub const VERSION: u32 = 3;

/// Everything a scenario test needs from the orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handover {
    pub version: u32,
    pub backend: BackendKind,
    /// The stress config, read again by each test (cheap, and the test then holds the
    /// same validated types as the orchestrator).
    pub config: PathBuf,
    /// `--set` overrides, applied after reading `config`.
    pub sets: Vec<String>,
    /// Artifacts directory; each test writes `scenarios/<name>.json` there.
    pub out_dir: PathBuf,
    /// Whose numbers (`[scenario.backend.*]`) the scenarios run with: the backend's
    /// own, or kind's when the local backend rehearses kind timing.
    pub profile: BackendKind,
    /// How to reach the prepared backend.
    pub target: Target,
    /// Whether `target.namespace` was prepared for this scenario alone (a fresh
    /// deploy with the scenario's HPA, one idle pod: `cluster::fresh`), so the
    /// scenario starts at once; otherwise it resets the shared namespace first.
    pub fresh_namespace: bool,
}

/// Why a hand-over could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error(
        "{VAR} is not set: the scenario tests run inside `cargo xtask stress` \
         (or `scaleproof stress`), which prepares a backend and sets it"
    )]
    Missing,
    #[error("cannot read the hand-over {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the hand-over {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the hand-over {path} has version {found}, this test binary reads version {VERSION}: \
         rebuild the scenario tests with the harness (`cargo xtask stress` does)"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write the hand-over {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Handover {
    /// Where the orchestrator writes it for a run with artifacts in `out_dir`.
    pub fn path_in(out_dir: &Path) -> PathBuf {
        out_dir.join("handover.json")
    }

    /// Where the orchestrator writes scenario `name`'s own hand-over, when the
    /// scenario has a namespace of its own.
    pub fn path_for(out_dir: &Path, name: &str) -> PathBuf {
        out_dir.join("handover").join(format!("{name}.json"))
    }

    /// Writes it to [`Handover::path_in`] `out_dir` and returns the path.
    pub fn write(&self) -> Result<PathBuf, HandoverError> {
        self.write_to(&Self::path_in(&self.out_dir))
    }

    /// Writes it to `path` and returns the path.
    pub fn write_to(&self, path: &Path) -> Result<PathBuf, HandoverError> {
        let path = path.to_path_buf();
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
            std::fs::write(&path, json)
        };
        write().map_err(|source| HandoverError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Reads the file `path`, refusing other versions.
    pub fn read(path: &Path) -> Result<Self, HandoverError> {
        let text = std::fs::read_to_string(path).map_err(|source| HandoverError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // The version first, so a newer layout is reported as such, not as a parse error.
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let versioned: Versioned =
            serde_json::from_str(&text).map_err(|source| HandoverError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        if versioned.version != VERSION {
            return Err(HandoverError::Version {
                path: path.to_path_buf(),
                found: versioned.version,
            });
        }
        serde_json::from_str(&text).map_err(|source| HandoverError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The hand-over named by [`VAR`]; `Ok(None)` when the variable is not set (a
    /// plain `cargo test`, where scenario tests are listed but not run).
    pub fn from_env() -> Result<Option<Self>, HandoverError> {
        match std::env::var_os(VAR).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(path) => Self::read(Path::new(&path)).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::KubeAccess;

    fn sample(out_dir: &Path) -> Handover {
        Handover {
            version: VERSION,
            backend: BackendKind::Kind,
            config: PathBuf::from("stress.toml"),
            sets: vec!["scale-up-1000.expect.max_p95_ms=250".into()],
            out_dir: out_dir.to_path_buf(),
            profile: BackendKind::Kind,
            target: Target {
                access: KubeAccess::Kubeconfig {
                    context: Some("kind-scaleproof".into()),
                },
                namespace: "scaleproof".into(),
                url: "http://127.0.0.1:30080".into(),
                hpa_sync_period_s: 5.0,
            },
            fresh_namespace: false,
        }
    }

    #[test]
    fn a_written_handover_reads_back_the_same() {
        let dir = tempfile::tempdir().expect("temp dir");
        let handover = sample(dir.path());
        let path = handover.write().expect("written");
        assert_eq!(Handover::read(&path).expect("read"), handover);
    }

    #[test]
    fn another_version_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("handover.json");
        std::fs::write(&path, r#"{"version": 99, "something": "else"}"#).expect("write");
        let err = Handover::read(&path).expect_err("version 99");
        assert!(
            matches!(err, HandoverError::Version { found: 99, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("rebuild the scenario tests"),
            "{err}"
        );
    }
}
