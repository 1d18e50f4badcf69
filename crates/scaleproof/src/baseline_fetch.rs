//! `scaleproof baseline fetch`: main's newest usable `report.json`, for the PR gate's
//! `--baseline`.
//!
//! The stress workflow publishes each successful run on a push to main as an artifact
//! (`scaleproof-baseline-<backend>`). This asks the GitHub CLI for those runs, newest
//! first, downloads their artifact one at a time and keeps the first report that
//! measured what this run will measure: the same backend and the same pods (requests,
//! limits, the cost knob; see [`crate::report::baseline::incomparable`]). Artifacts
//! expire and runs predate a change of the pods, so the newest run is not always the
//! one.
//!
//! Finding nothing is an answer, not an error: the PR gate then runs without a
//! baseline and its summary says why. `gh` is a separate process with a bounded
//! wait; its token needs only `actions: read`, which a fork's pull request has too.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::backend::BackendKind;
use crate::report::{Report, WorkloadReport, baseline};

/// What to look for, and where to put it.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The GitHub CLI (`gh`; a path in tests).
    pub gh: PathBuf,
    /// The workflow file whose runs publish the baseline.
    pub workflow: String,
    pub branch: String,
    /// The baseline must have run on this backend...
    pub backend: BackendKind,
    /// ...with these pods (`None`: any).
    pub workload: Option<WorkloadReport>,
    /// How many of the newest runs to try.
    pub max_runs: usize,
    /// Per `gh` call.
    pub timeout: Duration,
    /// Where the chosen report.json is written.
    pub out: PathBuf,
}

impl FetchOptions {
    /// The artifact name the workflow publishes for `backend`.
    pub fn artifact(&self) -> String {
        artifact_name(self.backend)
    }
}

/// The artifact a push to main publishes its report under.
pub fn artifact_name(backend: BackendKind) -> String {
    format!("scaleproof-baseline-{backend}")
}

/// The run a baseline came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub run_id: u64,
    pub head_sha: String,
    pub created_at: String,
    /// Runs tried before it, and why each was passed over.
    pub skipped: Vec<String>,
}

/// Why there is no baseline: every run tried and what was wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct NotFound {
    pub reasons: Vec<String>,
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no usable baseline: {}", self.reasons.join("; "))
    }
}

/// Writing the chosen report failed: the one error, since without the file the
/// gate would silently run unjudged.
#[derive(Debug, thiserror::Error)]
#[error("writing the baseline to {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// One run as `gh run list --json databaseId,createdAt,headSha` prints it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    database_id: u64,
    created_at: String,
    head_sha: String,
}

/// Finds and writes the newest usable baseline; `Ok(Err(_))` says why there is none.
pub fn fetch(options: &FetchOptions) -> Result<Result<Found, NotFound>, WriteError> {
    let _ = fs::remove_file(&options.out);
    let mut runs = match list_runs(options) {
        Ok(runs) => runs,
        Err(why) => return Ok(Err(NotFound { reasons: vec![why] })),
    };
    if runs.is_empty() {
        return Ok(Err(NotFound {
            reasons: vec![format!(
                "no successful `{}` run on a push to {} (the first merge publishes one)",
                options.workflow, options.branch
            )],
        }));
    }
    // Newest first, whatever order the API used. RFC 3339 in UTC sorts as text.
    runs.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    let mut skipped = Vec::new();
    for run in runs.iter().take(options.max_runs) {
        match try_run(options, run) {
            Ok(report) => {
                if let Some(parent) = options.out.parent() {
                    fs::create_dir_all(parent).map_err(|source| WriteError {
                        path: options.out.clone(),
                        source,
                    })?;
                }
                fs::write(&options.out, report).map_err(|source| WriteError {
                    path: options.out.clone(),
                    source,
                })?;
                return Ok(Ok(Found {
                    run_id: run.database_id,
                    head_sha: run.head_sha.clone(),
                    created_at: run.created_at.clone(),
                    skipped,
                }));
            }
            Err(why) => skipped.push(format!(
                "run {} ({}): {why}",
                run.database_id,
                short(&run.head_sha)
            )),
        }
    }
    Ok(Err(NotFound { reasons: skipped }))
}

fn list_runs(options: &FetchOptions) -> Result<Vec<Run>, String> {
    let limit = options.max_runs.to_string();
    let args = [
        "run",
        "list",
        "--workflow",
        &options.workflow,
        "--branch",
        &options.branch,
        "--event",
        "push",
        "--status",
        "success",
        "--limit",
        &limit,
        "--json",
        "databaseId,createdAt,headSha",
    ];
    let out = gh(options, &args)?;
    serde_json::from_str(&out).map_err(|e| format!("`gh run list` printed something else ({e})"))
}

/// The report of one run, if it is one we can compare with.
fn try_run(options: &FetchOptions, run: &Run) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
    let id = run.database_id.to_string();
    let dir_arg = dir.path().display().to_string();
    let artifact = options.artifact();
    gh(
        options,
        &[
            "run", "download", &id, "--name", &artifact, "--dir", &dir_arg,
        ],
    )?;
    let path = dir.path().join("report.json");
    let report = Report::read(&path).map_err(|e| format!("artifact {artifact}: {e}"))?;
    if report.run.backend != Some(options.backend) {
        return Err(format!(
            "ran on {}, not {}",
            report.run.backend_name(),
            options.backend
        ));
    }
    if let Some(why) = baseline::other_pods(options.workload.as_ref(), report.run.workload.as_ref())
    {
        return Err(why);
    }
    fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Runs `gh ARGS`, waiting at most `options.timeout`; its stdout, or why not.
/// Output goes to files, so a chatty `gh` cannot block on a full pipe while we wait.
fn gh(options: &FetchOptions, args: &[&str]) -> Result<String, String> {
    let shown = format!("{} {}", options.gh.display(), args.join(" "));
    let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let files = fs::File::create(&out_path).and_then(|o| Ok((o, fs::File::create(&err_path)?)));
    let (stdout, stderr) = files.map_err(|e| format!("`{shown}`: {e}"))?;
    let mut child = Command::new(&options.gh)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "`{}` is not installed (GitHub's runners have it; elsewhere pass \
                 --baseline a report.json you have)",
                options.gh.display()
            ),
            _ => format!("`{shown}`: {e}"),
        })?;
    let deadline = Instant::now() + options.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{shown}` took longer than {:?}", options.timeout));
            }
            Err(e) => return Err(format!("`{shown}`: {e}")),
        }
    };
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    if status.success() {
        return Ok(stdout);
    }
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    Err(format!(
        "`{shown}` failed ({status}): {}",
        last_line(&stderr)
    ))
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}
