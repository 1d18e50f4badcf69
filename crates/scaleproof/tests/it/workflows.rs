//! The GitHub workflows and the repository's composite action (`action.yml`), read as
//! data: the properties the gate's first real runs depend on (no machine here can run
//! them; `.ci/static-checks` lints them too).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The workflows, and the action they use, relative to the repository root.
const FILES: [&str; 3] = [
    ".github/workflows/ci.yml",
    ".github/workflows/stress.yml",
    "action.yml",
];

fn path_of(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(file)
}

fn raw(file: &str) -> String {
    let path = path_of(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(file: &str) -> Value {
    serde_norway::from_str(&raw(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn workflow(name: &str) -> Value {
    yaml(&format!(".github/workflows/{name}"))
}

fn steps<'a>(workflow: &'a Value, job: &str) -> &'a Vec<Value> {
    workflow["jobs"][job]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("job {job} has steps"))
}

/// Every list of steps in a workflow (per job) or a composite action.
fn step_lists(file: &str) -> Vec<(String, Vec<Value>)> {
    let doc = yaml(file);
    if let Some(steps) = doc["runs"]["steps"].as_array() {
        return vec![("runs".into(), steps.clone())];
    }
    doc["jobs"]
        .as_object()
        .unwrap_or_else(|| panic!("{file} has jobs or runs.steps"))
        .iter()
        .map(|(job, j)| {
            (
                job.clone(),
                j["steps"].as_array().cloned().unwrap_or_default(),
            )
        })
        .collect()
}

fn action() -> Value {
    yaml("action.yml")
}

fn named<'a>(steps: &'a [Value], prefix: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no step named {prefix}..."))
}

fn uses(step: &Value) -> &str {
    step["uses"].as_str().unwrap_or("")
}

/// Every action at a release that runs on node24 (GitHub forces node20 actions onto
/// node24 with a warning), pinned by the full commit SHA of that release's tag. Each
/// SHA was read from the action's repository at the tag, and its `action.yml`
/// checked to declare `runs.using: node24`.
const PINNED: [(&str, &str, &str); 8] = [
    (
        "actions/checkout",
        "3d3c42e5aac5ba805825da76410c181273ba90b1",
        "v7.0.1",
    ),
    (
        "Swatinem/rust-cache",
        "6323deb102c322ba6fcbdcafc7e3dddab59af2b6",
        "v2.9.2",
    ),
    (
        "actions/setup-go",
        "924ae3a1cded613372ab5595356fb5720e22ba16",
        "v6.5.0",
    ),
    (
        "actions/upload-artifact",
        "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f",
        "v7.0.0",
    ),
    (
        "actions/download-artifact",
        "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c",
        "v8.0.1",
    ),
    (
        "mikepenz/action-junit-report",
        "d9f48fc87bc235f7e214acf696ca5abc0a986f16",
        "v6.4.2",
    ),
    (
        "docker/setup-buildx-action",
        "37fe631027851001ddb9b187196cc803df7f5f0e",
        "v4.3.0",
    ),
    (
        "docker/build-push-action",
        "53b7df96c91f9c12dcc8a07bcb9ccacbed38856a",
        "v7.3.0",
    ),
];

#[test]
fn every_action_is_a_node24_release_pinned_by_sha_with_its_tag() {
    for name in FILES {
        for line in raw(name).lines() {
            let Some((_, rest)) = line.split_once("uses: ") else {
                continue;
            };
            if rest.trim() == "./" {
                continue; // the repository's own action.yml, checked below
            }
            let (action, tail) = rest.split_once('@').expect("action@sha");
            let (sha, comment) = tail.split_once(" # ").unwrap_or((tail, ""));
            let known = PINNED
                .iter()
                .find(|(a, _, _)| *a == action)
                .unwrap_or_else(|| panic!("{name}: {action} is not in the checked list"));
            assert_eq!(
                (sha.trim(), comment.trim()),
                (known.1, known.2),
                "{name}: {action} must be pinned to {} ({})",
                known.1,
                known.2
            );
        }
    }
}

#[test]
fn caches_survive_a_failed_run() {
    for name in FILES {
        for (job, steps) in step_lists(name) {
            for step in &steps {
                if uses(step).starts_with("Swatinem/rust-cache@") {
                    assert_eq!(
                        step["with"]["cache-on-failure"], true,
                        "{name}/{job}: rust-cache saves nothing on failure without cache-on-failure"
                    );
                }
            }
        }
    }
}

#[test]
fn the_image_is_built_with_a_layer_cache_before_the_gate_runs() {
    let w = workflow("stress.yml");
    let steps = steps(&w, "stress");
    let build = steps
        .iter()
        .position(|s| uses(s).starts_with("docker/build-push-action@"))
        .expect("an image build step");
    let with = &steps[build]["with"];
    assert!(
        with["cache-from"]
            .as_str()
            .unwrap_or("")
            .starts_with("type=gha")
    );
    assert!(
        with["cache-to"]
            .as_str()
            .unwrap_or("")
            .starts_with("type=gha")
    );
    assert_eq!(with["load"], true, "into the local Docker, for kind load");
    // Attestations make the image an index that kind's import cannot take whole.
    assert_eq!(with["provenance"], false);
    let gate = steps
        .iter()
        .position(|s| uses(s) == "./")
        .expect("the gate step uses the repository's action");
    assert!(build < gate);
    assert_eq!(steps[gate]["with"]["backend"], "kind");
    assert_eq!(
        steps[gate]["with"]["image"], with["tags"],
        "the gate deploys the image just built"
    );
    // The action hands a kind image over as prebuilt: it never builds one itself.
    let action = action();
    let run = named(
        action["runs"]["steps"].as_array().expect("steps"),
        "scaleproof stress",
    )["run"]
        .as_str()
        .unwrap_or("");
    assert!(
        run.contains(r#"kind) [ -z "$IMAGE" ] || args+=(--image "$IMAGE" --image-prebuilt)"#),
        "{run}"
    );
}

#[test]
fn the_report_job_skips_cleanly_when_the_gate_left_nothing() {
    let w = workflow("stress.yml");
    let steps = steps(&w, "report");
    let download = steps
        .iter()
        .find(|s| uses(s).starts_with("actions/download-artifact@"))
        .expect("a download step");
    assert_eq!(download["continue-on-error"], true);
    let id = download["id"]
        .as_str()
        .expect("the download step has an id");
    let publish = steps
        .iter()
        .find(|s| uses(s).starts_with("mikepenz/action-junit-report@"))
        .expect("a publish step");
    let condition = publish["if"].as_str().expect("publishing is conditional");
    assert!(
        condition.contains(&format!("steps.{id}.outcome == 'success'"))
            && condition.contains("hashFiles('scaleproof-report/junit.xml')"),
        "{condition}"
    );
}

/// Main publishes, PRs fetch: the names and paths on both sides agree with the code,
/// the token stays read-only, and a missing baseline cannot fail the job.
#[test]
fn prs_are_judged_against_the_baseline_main_publishes() {
    let w = workflow("stress.yml");
    let on = &w["on"];
    assert_eq!(on["push"]["branches"], serde_json::json!(["main"]), "{on}");
    assert!(on.get("pull_request").is_some(), "{on}");

    let perms = &w["jobs"]["stress"]["permissions"];
    assert_eq!(perms["actions"], "read", "{perms}");
    assert!(
        perms.as_object().unwrap().values().all(|v| v == "read"),
        "the gate's token only reads: {perms}"
    );

    let stress = steps(&w, "stress");
    let gate = stress.iter().find(|s| uses(s) == "./").expect("uses: ./");
    assert_ne!(gate["with"]["judge-against-main"], "false", "{gate}");
    assert_eq!(gate["with"]["out"], "target/scaleproof", "{gate}");

    let artifact =
        scaleproof::baseline_fetch::artifact_name(scaleproof::backend::BackendKind::Kind);
    let action = action();
    assert_eq!(action["inputs"]["judge-against-main"]["default"], "true");
    let steps = action["runs"]["steps"].as_array().expect("steps");
    let fetch = named(steps, "Main's baseline");
    assert!(
        fetch["if"]
            .as_str()
            .is_some_and(|c| c.contains("github.event_name == 'pull_request'")),
        "{fetch}"
    );
    assert_eq!(
        fetch["continue-on-error"], true,
        "no baseline is never a failure"
    );
    let fetch_run = fetch["run"].as_str().unwrap();
    let written = "$RUNNER_TEMP/scaleproof-baseline/report.json";
    assert!(
        fetch_run.contains("cargo xtask baseline fetch --backend \"$BACKEND\"")
            && fetch_run.contains(&format!("--out \"{written}\"")),
        "{fetch_run}"
    );

    let gate = named(steps, "scaleproof stress");
    let gate_run = gate["run"].as_str().unwrap();
    assert!(
        gate_run.contains(&format!("baseline=\"{written}\""))
            && gate_run.contains(r#"[ -f "$baseline" ] && args+=(--baseline "$baseline")"#),
        "the gate reads what the fetch wrote, when it wrote it: {gate_run}"
    );

    let publish = named(steps, "Publish the baseline");
    let condition = publish["if"].as_str().unwrap();
    assert!(
        condition.starts_with("success()") && condition.contains("github.event_name == 'push'"),
        "{condition}"
    );
    assert_eq!(
        publish["with"]["name"]
            .as_str()
            .unwrap()
            .replace("${{ inputs.backend }}", "kind"),
        artifact
    );
    assert_eq!(publish["with"]["path"], "${{ steps.gate.outputs.report }}");
    let position = |step: &Value| steps.iter().position(|s| s == step).unwrap();
    assert!(position(fetch) < position(gate) && position(gate) < position(publish));
}

/// zizmor flags template expansion inside a script; the action passes every input
/// through env instead, so a crafted input cannot become shell.
#[test]
fn the_actions_scripts_never_expand_inputs_in_place() {
    let action = action();
    for step in action["runs"]["steps"].as_array().expect("steps") {
        if let Some(run) = step["run"].as_str() {
            assert!(!run.contains("${{"), "{}: {run}", step["name"]);
        }
    }
}
