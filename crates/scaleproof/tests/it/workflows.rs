//! The GitHub workflows and the repository's composite action (`action.yml`), read as
//! data: the properties the gate's first real runs depend on (no machine here can run
//! them; `.ci/static-checks` lints them too).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The workflows, and the action they use, relative to the repository root.
const FILES: [&str; 4] = [
    ".github/workflows/ci.yml",
    ".github/workflows/stress.yml",
    ".github/workflows/release.yml",
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
        fetch_run.contains(r#""${scaleproof[@]}" baseline fetch --backend "$BACKEND""#)
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

/// zizmor flags template expansion inside a script; the action and the workflows pass
/// every input (and the tag's name) through env instead, so a crafted input cannot
/// become shell.
#[test]
fn no_script_expands_an_expression_in_place() {
    for name in FILES {
        for (job, steps) in step_lists(name) {
            for step in &steps {
                if let Some(run) = step["run"].as_str() {
                    assert!(!run.contains("${{"), "{name}/{job}/{}: {run}", step["name"]);
                }
            }
        }
    }
}

// The release workflow and the action's `version` input: release.yml publishes
// `scaleproof-<tag>-<arch>-unknown-linux-gnu.tar.gz` and SHA256SUMS, the action
// downloads and checks them. Both halves are read as data, then their scripts are run
// here end to end against a fake `curl` (no machine here can run the workflows).

const TARGETS: [(&str, &str); 2] = [
    ("x86_64-unknown-linux-gnu", "ubuntu-24.04"),
    ("aarch64-unknown-linux-gnu", "ubuntu-24.04-arm"),
];

fn is_full_sha(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[test]
fn releases_are_cut_from_v_tags_only() {
    let w = workflow("release.yml");
    let on = w["on"].as_object().expect("on: is a mapping");
    assert_eq!(
        on.keys().collect::<Vec<_>>(),
        ["push"],
        "no manual, PR or branch trigger: {on:?}"
    );
    assert_eq!(on["push"], serde_json::json!({ "tags": ["v*"] }));
}

#[test]
fn both_linux_targets_are_built_natively() {
    let w = workflow("release.yml");
    let build = &w["jobs"]["build"];
    assert_eq!(build["runs-on"], "${{ matrix.runner }}");
    let include = build["strategy"]["matrix"]["include"]
        .as_array()
        .expect("matrix.include");
    let pairs: Vec<(&str, &str)> = include
        .iter()
        .map(|e| {
            (
                e["target"].as_str().unwrap_or(""),
                e["runner"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(pairs, TARGETS, "each target on a runner of its own arch");
    let steps = steps(&w, "build");
    for step in steps {
        let run = step["run"].as_str().unwrap_or("");
        assert!(
            !run.contains("--target") && !run.contains("cross"),
            "native builds need no cross toolchain: {run}"
        );
    }
    let cargo = named(steps, "cargo build");
    assert_eq!(
        cargo["run"],
        "cargo build --release --locked -p scaleproof --bin scaleproof"
    );
    // No build cache in a release: it could restore what another run saved.
    assert!(
        !steps
            .iter()
            .any(|s| uses(s).starts_with("Swatinem/rust-cache@")),
        "{steps:?}"
    );
    let package = named(steps, "Package");
    assert_eq!(package["env"]["TAG"], "${{ github.ref_name }}");
    assert_eq!(package["env"]["TARGET"], "${{ matrix.target }}");
    assert!(
        package["run"]
            .as_str()
            .unwrap()
            .contains(r#"name="scaleproof-${TAG}-${TARGET}""#),
        "{package}"
    );
    let upload = steps
        .iter()
        .find(|s| uses(s).starts_with("actions/upload-artifact@"))
        .expect("an upload step");
    assert_eq!(upload["with"]["name"], "scaleproof-${{ matrix.target }}");
    assert_eq!(upload["with"]["if-no-files-found"], "error");
}

/// Every `uses:` of every workflow and the action, read from the YAML rather than
/// line by line: a full commit SHA (tags and branches move) and the release it is.
#[test]
fn every_uses_is_a_full_commit_sha() {
    let mut seen = 0;
    for name in FILES {
        for (job, steps) in step_lists(name) {
            for step in &steps {
                let reference = uses(step);
                if reference.is_empty() || reference == "./" {
                    continue;
                }
                let (_, sha) = reference
                    .split_once('@')
                    .unwrap_or_else(|| panic!("{name}/{job}: {reference} has no @"));
                assert!(is_full_sha(sha), "{name}/{job}: {reference}");
                seen += 1;
            }
        }
    }
    let release = raw(".github/workflows/release.yml");
    assert!(release.matches("uses: ").count() >= 3, "{release}");
    assert!(seen >= 10, "{seen}");
}

#[test]
fn only_the_release_job_may_write() {
    let w = workflow("release.yml");
    assert_eq!(
        w["permissions"],
        serde_json::json!({}),
        "nothing at the top level"
    );
    let jobs = w["jobs"].as_object().expect("jobs");
    for (name, job) in jobs {
        let expected = if name == "release" {
            serde_json::json!({ "contents": "write" })
        } else {
            serde_json::json!({ "contents": "read" })
        };
        assert_eq!(job["permissions"], expected, "job {name}");
        assert!(
            job["timeout-minutes"].as_u64().is_some_and(|m| m <= 60),
            "job {name}"
        );
        for step in job["steps"].as_array().expect("steps") {
            if uses(step).starts_with("actions/checkout@") {
                assert_eq!(step["with"]["persist-credentials"], false, "job {name}");
            }
        }
    }
    assert!(jobs.contains_key("build") && jobs.contains_key("release"));
    assert_eq!(w["jobs"]["release"]["needs"], "build");
    let group = w["concurrency"]["group"].as_str().unwrap_or("");
    assert!(group.contains("${{ github.ref }}"), "{group}");
}

#[test]
fn the_release_attaches_sha256sums_with_gh() {
    let w = workflow("release.yml");
    let steps = steps(&w, "release");
    for step in steps {
        let action = uses(step);
        assert!(
            action.is_empty() || action.starts_with("actions/"),
            "no third-party action near a writable token: {action}"
        );
    }
    let download = steps
        .iter()
        .find(|s| uses(s).starts_with("actions/download-artifact@"))
        .expect("a download step");
    assert_eq!(download["with"]["pattern"], "scaleproof-*");
    assert_eq!(download["with"]["merge-multiple"], true);
    let sums = named(steps, "SHA256SUMS");
    let sums_run = sums["run"].as_str().unwrap();
    assert!(
        sums_run.contains(r#"sha256sum -- "${tarballs[@]}" > SHA256SUMS"#),
        "{sums_run}"
    );
    let create = named(steps, "gh release create");
    assert_eq!(create["env"]["GH_TOKEN"], "${{ github.token }}");
    assert_eq!(create["env"]["TAG"], "${{ github.ref_name }}");
    assert_eq!(sums["working-directory"], create["working-directory"]);
    let create_run = create["run"].as_str().unwrap();
    assert!(
        create_run.contains(r#"gh release create "$TAG" "#)
            && create_run.contains("--verify-tag")
            && create_run.ends_with("-- scaleproof-*.tar.gz SHA256SUMS\n"),
        "{create_run}"
    );
}

/// `version` set: the release's binary, checked, instead of a cargo build; empty: as
/// before.
#[test]
fn the_action_runs_a_released_binary_when_given_a_version() {
    let action = action();
    let input = &action["inputs"]["version"];
    assert_eq!(
        input["default"], "",
        "building from source stays the default"
    );
    let description = input["description"].as_str().unwrap_or("");
    assert!(
        description.contains("no Rust toolchain")
            && description.contains("[backend.local.containers.*] command")
            && description.contains("cargo_bin"),
        "{description}"
    );
    let steps = action["runs"]["steps"].as_array().expect("steps");
    let position = |step: &Value| steps.iter().position(|s| s == step).unwrap();
    let check = named(steps, "Check the inputs");
    assert_eq!(check["env"]["VERSION"], "${{ inputs.version }}");

    let download = named(steps, "Download scaleproof");
    assert_eq!(download["if"], "inputs.version != ''");
    assert_eq!(download["id"], "bin");
    assert_eq!(download["env"]["VERSION"], "${{ inputs.version }}");
    assert_eq!(
        download["env"]["ACTION_REPO"],
        "${{ github.action_repository }}"
    );
    let run = download["run"].as_str().unwrap();
    for needed in [
        "uname -m",
        r#"tarball="scaleproof-$VERSION-$arch-unknown-linux-gnu.tar.gz""#,
        r#"base="https://github.com/$repo/releases/download/$VERSION""#,
        "sha256sum --check --ignore-missing SHA256SUMS",
        r#"echo "path=$dir/bin/scaleproof" >> "$GITHUB_OUTPUT""#,
    ] {
        assert!(run.contains(needed), "{needed} in {run}");
    }
    assert!(position(check) < position(download));

    let toolchain = named(steps, "Rust toolchain");
    let cache = steps
        .iter()
        .find(|s| uses(s).starts_with("Swatinem/rust-cache@"))
        .expect("rust-cache");
    for step in [toolchain, cache] {
        assert_eq!(step["if"], "inputs.version == ''", "{step}");
    }
    // The cargo build happens inside `cargo xtask`: only when there is no binary.
    for name in ["Main's baseline", "scaleproof stress"] {
        let step = named(steps, name);
        assert_eq!(
            step["env"]["SCALEPROOF_BIN"],
            "${{ steps.bin.outputs.path }}"
        );
        assert_eq!(
            step["env"]["SCALEPROOF_ROOT"],
            "${{ steps.bin.outputs.root }}"
        );
        let run = step["run"].as_str().unwrap();
        assert!(
            run.contains(
                r#"if [ -n "$SCALEPROOF_BIN" ]; then cd "$SCALEPROOF_ROOT" || exit 2; scaleproof=("$SCALEPROOF_BIN"); else scaleproof=(cargo xtask); fi"#
            ),
            "{name}: {run}"
        );
        let code = run.lines().filter(|l| !l.trim_start().starts_with('#'));
        assert_eq!(
            code.map(|l| l.matches("cargo").count()).sum::<usize>(),
            1,
            "{name}: cargo only in the fallback: {run}"
        );
        assert!(position(download) < position(step));
    }
    let gate = named(steps, "scaleproof stress")["run"].as_str().unwrap();
    assert!(
        gate.contains(r#""${scaleproof[@]}" stress "${args[@]}" "${extra[@]}""#),
        "{gate}"
    );
}

/// Runs a step's script as the runner does (`shell: bash` on Linux) in `dir`, with
/// `env` and `bin` first on PATH; every GitHub variable the scripts read is set here,
/// not inherited from a CI run of these tests.
fn run_step(
    step: &Value,
    dir: &Path,
    env: &[(&str, &str)],
    bin: Option<&Path>,
) -> std::process::Output {
    let script = step["run"].as_str().expect("a run step");
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .current_dir(dir);
    for var in [
        "ACTION_REPO",
        "GITHUB_ACTION_PATH",
        "GITHUB_OUTPUT",
        "GITHUB_REPOSITORY",
        "GITHUB_WORKSPACE",
        "RUNNER_TEMP",
        "TAG",
        "TARGET",
        "VERSION",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    if let Some(bin) = bin {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", bin.display()));
    }
    cmd.output().expect("bash runs")
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn write_executable(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, body).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn the_version_input_is_checked_before_it_reaches_a_url() {
    let action = action();
    let check = named(
        action["runs"]["steps"].as_array().unwrap(),
        "Check the inputs",
    );
    let root = path_of(".");
    let root_s = root.display().to_string();
    for (version, ok) in [
        ("", true),
        ("v0.2.0", true),
        ("v1", true),
        ("v1.2.3-rc.1", true),
        ("0.2.0", false),
        ("latest", false),
        ("v1..2", false),
        ("v1.2/../../x", false),
        ("v1.2.0;id", false),
        ("v1.2.0 ", false),
    ] {
        let out = run_step(
            check,
            &root,
            &[
                ("BACKEND", "local"),
                ("IMAGE", ""),
                ("URL", ""),
                ("CONFIG", "stress.toml"),
                ("GITHUB_WORKSPACE", &root_s),
                ("VERSION", version),
            ],
            None,
        );
        let expected = if ok { Some(0) } else { Some(2) };
        assert_eq!(out.status.code(), expected, "{version:?}: {}", text(&out));
        if !ok {
            assert!(
                text(&out).contains("version must be a release tag"),
                "{}",
                text(&out)
            );
        }
    }
}

/// release.yml's packaging and sums, then the action's download step against what
/// they made: the names agree, the binary comes out runnable, and a tarball that does
/// not match SHA256SUMS, or has no line in it, stops the action before it runs.
#[test]
fn the_action_downloads_and_checks_what_the_release_publishes() {
    let release = workflow("release.yml");
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let tag = "v9.8.7";
    let runner_temp = tmp.path().join("runner-temp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    let runner_temp_s = runner_temp.display().to_string();

    // The build job, once per target, around a stand-in binary.
    write_executable(
        &work.join("target/release/scaleproof"),
        "#!/bin/sh\necho 'scaleproof 9.8.7'\n",
    );
    std::fs::write(work.join("README.md"), "readme").unwrap();
    std::fs::write(work.join("LICENSE-MIT"), "license").unwrap();
    let package = named(steps(&release, "build"), "Package");
    for (target, _) in TARGETS {
        let env = [
            ("TAG", tag),
            ("TARGET", target),
            ("RUNNER_TEMP", &runner_temp_s),
        ];
        let out = run_step(package, &work, &env, None);
        assert!(out.status.success(), "{target}: {}", text(&out));
        let listing = text(&out);
        for file in ["scaleproof", "README.md", "LICENSE-MIT"] {
            assert!(listing.contains(file), "{file} in {listing}");
        }
    }
    // The tag must be the binary's version.
    let env = [
        ("TAG", "v1.0.0"),
        ("TARGET", "x"),
        ("RUNNER_TEMP", &runner_temp_s),
    ];
    let wrong = run_step(package, &work, &env, None);
    assert!(!wrong.status.success(), "{}", text(&wrong));

    // The release job, on the tarballs the artifacts bring.
    let dist = work.join("dist");
    let sums = named(steps(&release, "release"), "SHA256SUMS");
    let out = run_step(sums, &dist, &[], None);
    assert!(out.status.success(), "{}", text(&out));
    let sums_text = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    assert_eq!(sums_text.lines().count(), 2, "{sums_text}");
    for (target, _) in TARGETS {
        let line = format!("  scaleproof-{tag}-{target}.tar.gz\n");
        assert!(sums_text.contains(&line), "{line:?} in {sums_text}");
    }

    // The action, with a curl that serves the release's files from `dist`.
    let fake = tmp.path().join("fake-bin");
    write_executable(
        &fake.join("curl"),
        &format!(
            r#"#!/bin/sh
out=""; url=""
while [ $# -gt 0 ]; do
  case "$1" in --output) out="$2"; shift 2 ;; --proto|--retry) shift 2 ;; -*) shift ;; *) url="$1"; shift ;; esac
done
echo "$url" >> '{log}'
src='{dist}/'"${{url##*/}}"
[ -f "$src" ] || {{ echo "curl: (22) 404 $url" >&2; exit 22; }}
cp "$src" "$out"
"#,
            log = tmp.path().join("curl.log").display(),
            dist = dist.display(),
        ),
    );
    let output_file = tmp.path().join("github-output");
    // The action's checkout as the runner lays it out, and another without the path.
    let kind_yaml = raw("k8s/kind.yaml");
    let installed = tmp.path().join("_actions/owner/scaleproof/v9.8.7");
    let elsewhere = tmp.path().join("checkout-of-scaleproof");
    for dir in [&installed, &elsewhere] {
        std::fs::create_dir_all(dir.join("k8s")).unwrap();
        std::fs::write(dir.join("k8s/kind.yaml"), &kind_yaml).unwrap();
    }
    let action = action();
    let download = named(
        action["runs"]["steps"].as_array().unwrap(),
        "Download scaleproof",
    );
    let download_with = |action_repo: &str, action_path: &Path| {
        std::fs::write(&output_file, "").unwrap();
        let _ = std::fs::remove_file(tmp.path().join("curl.log"));
        run_step(
            download,
            tmp.path(),
            &[
                ("VERSION", tag),
                ("ACTION_REPO", action_repo),
                ("GITHUB_ACTION_PATH", &action_path.display().to_string()),
                ("GITHUB_WORKSPACE", &work.display().to_string()),
                ("GITHUB_REPOSITORY", "someone/their-service"),
                ("RUNNER_TEMP", &runner_temp_s),
                ("GITHUB_OUTPUT", &output_file.display().to_string()),
            ],
            Some(&fake),
        )
    };

    let arch = std::env::consts::ARCH;
    if !matches!(arch, "x86_64" | "aarch64") {
        let out = download_with("owner/scaleproof", &installed);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("built for x86_64 and aarch64 Linux"));
        return;
    }
    let tarball = format!("scaleproof-{tag}-{arch}-unknown-linux-gnu.tar.gz");

    // github.action_repository as given, and (the runner leaves it empty in a
    // composite action) as the action's path says.
    for (action_repo, action_path) in [("owner/scaleproof", &elsewhere), ("", &installed)] {
        let out = download_with(action_repo, action_path);
        assert!(out.status.success(), "{action_repo:?}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("{tarball}: OK")),
            "{}",
            text(&out)
        );
        let urls = std::fs::read_to_string(tmp.path().join("curl.log")).unwrap();
        assert_eq!(
            urls,
            format!(
                "https://github.com/owner/scaleproof/releases/download/{tag}/{tarball}\n\
                 https://github.com/owner/scaleproof/releases/download/{tag}/SHA256SUMS\n"
            )
        );
        let written = std::fs::read_to_string(&output_file).unwrap();
        let outputs: std::collections::BTreeMap<&str, &str> =
            written.lines().filter_map(|l| l.split_once('=')).collect();
        assert_eq!(
            outputs.keys().copied().collect::<Vec<_>>(),
            ["path", "root"],
            "{written}"
        );
        let bin = outputs["path"];
        assert!(Path::new(bin).starts_with(&runner_temp), "{bin}");
        // The binary compiles the scenarios when its root is scaleproof's workspace
        // (as the action's checkout is); its own root has only the kind config.
        let root = Path::new(outputs["root"]);
        assert!(scaleproof::compile::has_scenario_tests_crate(&path_of(".")));
        assert!(!scaleproof::compile::has_scenario_tests_crate(root));
        assert_eq!(
            std::fs::read_to_string(root.join("k8s/kind.yaml")).unwrap(),
            kind_yaml
        );
        let version = std::process::Command::new(bin)
            .arg("--version")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&version.stdout),
            "scaleproof 9.8.7\n"
        );
    }

    // No repository to download from: a clear error, not a request.
    let out = download_with("", &elsewhere);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("cannot tell which repository"),
        "{}",
        text(&out)
    );

    // SHA256SUMS without the tarball's line: --ignore-missing alone would pass.
    let good_sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    let others: String = good_sums
        .lines()
        .filter(|l| !l.ends_with(&tarball))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dist.join("SHA256SUMS"), others).unwrap();
    let out = download_with("owner/scaleproof", &installed);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("has no line for {tarball}")),
        "{}",
        text(&out)
    );
    assert!(std::fs::read_to_string(&output_file).unwrap().is_empty());
    std::fs::write(dist.join("SHA256SUMS"), &good_sums).unwrap();

    // A tarball that is not the one summed.
    let mut bytes = std::fs::read(dist.join(&tarball)).unwrap();
    bytes.push(0);
    std::fs::write(dist.join(&tarball), bytes).unwrap();
    let out = download_with("owner/scaleproof", &installed);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("does not match the SHA256SUMS"),
        "{}",
        text(&out)
    );
    assert!(std::fs::read_to_string(&output_file).unwrap().is_empty());
}
