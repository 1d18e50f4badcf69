//! `scaleproof baseline fetch` against a fake `gh`: which report is chosen, and what
//! happens when there is none. The fake answers as the GitHub CLI does: `run list
//! --json` prints an array newest first, `run download` writes the artifact's files
//! into `--dir` or fails with gh's message for a missing/expired artifact.
//!
//! Checked against the GitHub CLI: `pkg/cmd/run/download/download.go` (cli/cli)
//! extracts a single `--name` straight into `--dir` (no per-artifact subdirectory)
//! and fails with "no valid artifacts found to download" when the run's artifacts
//! expired; `gh run list` filters by `--workflow`, `--branch`, `--event`, `--status`
//! (`success` among its values) and prints `--json databaseId,createdAt,headSha`
//! (gh-run-list(1), gh 2.46).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use scaleproof::backend::BackendKind;
use scaleproof::baseline_fetch::{FetchOptions, fetch};
use scaleproof::report::{Report, RunMeta, SCHEMA_VERSION, WorkloadReport};

const ARTIFACT: &str = "scaleproof-baseline-kind";

fn pods(limit_m: u64) -> WorkloadReport {
    WorkloadReport {
        cpu_request_millicores: 100,
        cpu_limit_millicores: limit_m,
        env: BTreeMap::from([("IRIS_CPU_COST_MS".into(), "10".into())]),
    }
}

fn report(backend: BackendKind, sha: &str, limit_m: u64) -> String {
    let report = Report {
        schema_version: SCHEMA_VERSION,
        run: RunMeta {
            backend: Some(backend),
            git_sha: Some(sha.into()),
            started_at: "2026-12-01T10:00:00Z".into(),
            ended_at: "2026-12-01T10:09:00Z".into(),
            config: "stress.toml".into(),
            tool_versions: BTreeMap::new(),
            cpu_limit: None,
            memory_limit: None,
            pod_network: None,
            local_timing: None,
            workload: Some(pods(limit_m)),
            hpa_sync_period_s: Some(5.0),
            metric_resolution_s: Some(15.0),
            lanes: None,
        },
        setup: Vec::new(),
        scenarios: Vec::new(),
        comparisons: Vec::new(),
        baseline: Vec::new(),
        against_baseline: None,
    };
    serde_json::to_string(&report).expect("serializes")
}

/// A directory with a fake `gh`, its run list, and artifacts by run id.
struct FakeGh {
    dir: tempfile::TempDir,
}

impl FakeGh {
    fn new(runs_json: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().display().to_string();
        let script = format!(
            r#"#!/bin/sh
echo "$@" >> '{root}/calls'
case "$1 $2" in
  "run list")
    cat '{root}/runs.json' ;;
  "run download")
    id="$3"; name=""; out=""
    shift 3
    while [ $# -gt 0 ]; do
      case "$1" in --name) name="$2"; shift 2 ;; --dir) out="$2"; shift 2 ;; *) shift ;; esac
    done
    src='{root}/artifacts/'"$id/$name"
    if [ -d "$src" ]; then cp "$src"/* "$out"/; else echo "no valid artifacts found to download" >&2; exit 1; fi ;;
  *) echo "unknown command $1 $2" >&2; exit 1 ;;
esac
"#
        );
        let gh = dir.path().join("gh");
        fs::write(&gh, script).expect("write fake gh");
        fs::set_permissions(&gh, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::write(dir.path().join("runs.json"), runs_json).expect("runs.json");
        FakeGh { dir }
    }

    fn artifact(&self, run_id: u64, report_json: &str) {
        let d = self
            .dir
            .path()
            .join(format!("artifacts/{run_id}/{ARTIFACT}"));
        fs::create_dir_all(&d).expect("artifact dir");
        fs::write(d.join("report.json"), report_json).expect("artifact");
    }

    fn options(&self) -> FetchOptions {
        FetchOptions {
            gh: self.dir.path().join("gh"),
            workflow: "stress.yml".into(),
            branch: "main".into(),
            backend: BackendKind::Kind,
            workload: Some(pods(200)),
            max_runs: 10,
            timeout: Duration::from_secs(20),
            out: self.out(),
        }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("target/baseline/report.json")
    }

    fn calls(&self) -> String {
        fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }
}

fn runs(ids: &[(u64, &str, &str)]) -> String {
    let items: Vec<String> = ids
        .iter()
        .map(|(id, sha, at)| {
            format!(r#"{{"databaseId":{id},"createdAt":"{at}","headSha":"{sha}"}}"#)
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn sha_of(path: &Path) -> Option<String> {
    Report::read(path).ok()?.run.git_sha
}

#[test]
fn the_newest_run_measuring_the_same_pods_on_the_same_backend_is_chosen() {
    // Listed out of order on purpose: the newest is 40 (expired artifact), then 30
    // (a local run published under kind's name), 20 (other CPU limit), 10 (good),
    // 5 (good but older).
    let gh = FakeGh::new(&runs(&[
        (10, "aaaa10aaaa", "2026-11-30T10:00:00Z"),
        (40, "dddd40dddd", "2026-12-01T12:00:00Z"),
        (30, "cccc30cccc", "2026-12-01T11:00:00Z"),
        (5, "eeee05eeee", "2026-11-29T10:00:00Z"),
        (20, "bbbb20bbbb", "2026-12-01T09:00:00Z"),
    ]));
    gh.artifact(30, &report(BackendKind::Local, "cccc30cccc", 200));
    gh.artifact(20, &report(BackendKind::Kind, "bbbb20bbbb", 400));
    gh.artifact(10, &report(BackendKind::Kind, "aaaa10aaaa", 200));
    gh.artifact(5, &report(BackendKind::Kind, "eeee05eeee", 200));

    let found = fetch(&gh.options()).expect("writes").expect("a baseline");
    assert_eq!(found.run_id, 10);
    assert_eq!(sha_of(&gh.out()).as_deref(), Some("aaaa10aaaa"));
    let skipped = found.skipped.join("\n");
    assert_eq!(found.skipped.len(), 3, "{skipped}");
    assert!(
        skipped.contains("run 40 (dddd40d)") && skipped.contains("no valid artifacts"),
        "{skipped}"
    );
    assert!(
        skipped.contains("run 30") && skipped.contains("ran on local, not kind"),
        "{skipped}"
    );
    assert!(
        skipped.contains("run 20") && skipped.contains("the pods differ"),
        "{skipped}"
    );

    let calls = gh.calls();
    let list = calls.lines().next().expect("gh run list was called");
    for flag in [
        "--workflow stress.yml",
        "--branch main",
        "--event push",
        "--status success",
        "--json databaseId,createdAt,headSha",
    ] {
        assert!(list.contains(flag), "{flag} missing from `{list}`");
    }
    assert!(
        calls.contains(&format!("run download 10 --name {ARTIFACT} --dir")),
        "{calls}"
    );
    assert!(
        !calls.contains("run download 5 "),
        "stops at the first usable run: {calls}"
    );
}

#[test]
fn no_run_yet_is_an_answer_and_a_stale_baseline_is_removed() {
    let gh = FakeGh::new("[]");
    fs::create_dir_all(gh.out().parent().unwrap()).unwrap();
    fs::write(gh.out(), report(BackendKind::Kind, "stale", 200)).unwrap();
    let none = fetch(&gh.options())
        .expect("no write error")
        .expect_err("nothing found");
    assert!(
        none.to_string()
            .contains("no successful `stress.yml` run on a push to main"),
        "{none}"
    );
    assert!(
        !gh.out().exists(),
        "a stale baseline must not be compared with"
    );
}

#[test]
fn only_unusable_runs_say_why_each_was_passed_over() {
    let gh = FakeGh::new(&runs(&[(7, "abcdef123", "2026-12-01T00:00:00Z")]));
    gh.artifact(7, "{\"not\": \"a report\"}");
    let none = fetch(&gh.options())
        .expect("no write error")
        .expect_err("nothing usable");
    let text = none.to_string();
    assert!(
        text.contains("run 7 (abcdef1)") && text.contains("is not a scaleproof report"),
        "{text}"
    );
}

#[test]
fn gh_failing_or_missing_is_noted_not_fatal() {
    let gh = FakeGh::new("this is not json");
    let none = fetch(&gh.options())
        .expect("no write error")
        .expect_err("unparsable list");
    assert!(
        none.to_string()
            .contains("`gh run list` printed something else"),
        "{none}"
    );

    let mut options = gh.options();
    options.gh = gh.dir.path().join("no-such-gh");
    let none = fetch(&options).expect("no write error").expect_err("no gh");
    assert!(none.to_string().contains("is not installed"), "{none}");
}
