#!/usr/bin/env python3
"""The mutation table: the gate's verdict on broken and valid variants of k8s/.

A gate is worth its verdict: each row changes the repository's manifests the way a
pull request could, runs one scenario on the local backend at fast timing, and checks
the exit code (0 pass, 1 an expectation failed, 2 setup or infrastructure failed) and
that junit.xml or summary.md names the cause in words a person understands. Broken
rows must go red with their cause named; valid rows must stay green.

The code rows change the service binary instead (50 % more CPU per request) and judge
it against a baseline run of the unchanged service, alone after the other rows.

Usage: python3 .ci/mutations.py [--out DIR] [--only NAME ...] [--jobs N] [--markdown]
Exit 0 when every row gave its expected verdict, 1 otherwise. Needs what the local
backend needs (Linux; root for CPU and memory limits and pod network namespaces).
"""

import argparse
import concurrent.futures
import json
import pathlib
import re
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

# (name, kind, file, old, new, scenario, expected exit, words one of the reports must contain)
# `old` must occur in `file` exactly once: the mutation is checked to have happened.
ROWS = [
    ("no way to scale: maxReplicas 1", "broken",
     "hpa.yaml", "maxReplicas: 3", "maxReplicas: 1",
     "scale-up-1000", 2, ["min_peak_replicas: 2 can never be reached: the HPA allows at most 1"]),
    ("over-provisioned: minReplicas 3", "broken",
     "hpa.yaml", "minReplicas: 1", "minReplicas: 3",
     "normal-load", 1, ["replicas stay <= 1", "peak 3"]),
    ("no CPU request or limit at all", "broken",
     "deployment.yaml", "              cpu: 100m\n", "",
     "scale-up-1000", 2, ["missing request for cpu"]),
    ("a readiness probe that never passes", "broken",
     "deployment.yaml", "path: /ready", "path: /not-ready",
     "scale-up-1000", 2, ["httpGet /not-ready", "never passes"]),
    ("a container that exits at start", "broken",
     "deployment.yaml", 'args: ["--host"', 'args: ["--no-such-flag", "--host"',
     "scale-up-1000", 2, ["last words", "no-such-flag"]),
    ("listening on a port that is not the containerPort", "broken",
     "deployment.yaml", '"--port", "8000"]', '"--port", "8001"]',
     "scale-up-1000", 2, ["never passes", "Connection refused"]),
    ("a memory limit too small to start in", "broken",
     "deployment.yaml", "memory: 256Mi", "memory: 256Ki",
     "scale-up-1000", 2, ["OOMKilled"]),
    ("a Service that selects no pod", "broken",
     "service.yaml", "  selector:\n    app.kubernetes.io/name: iris-classifier",
     "  selector:\n    app.kubernetes.io/name: nobody",
     "scale-up-1000", 2, ["selects no pod of Deployment iris-classifier"]),
    ("the HPA pointing at no Deployment", "broken",
     "hpa.yaml", "    kind: Deployment\n    name: iris-classifier\n",
     "    kind: Deployment\n    name: no-such-deployment\n",
     "scale-up-1000", 1, ["FailedGetScale", "no-such-deployment"]),
    ("valid: CPU request defaulted from the limit", "valid",
     "deployment.yaml", "              cpu: 100m\n", "",
     "scale-up-1000", 0, ["## ✅ scale-up-1000"]),
    ("valid: probes on the port number instead of its name", "valid",
     "deployment.yaml", "port: http", "port: 8000",
     "scale-up-1000", 0, ["## ✅ scale-up-1000"]),
]

# Rows that change a second thing: the "no CPU" row removes the limit too; the memory
# row lowers the request with the limit (the API server refuses a request above it).
SECOND = {
    "no CPU request or limit at all": ("              cpu: 200m\n", ""),
    "a memory limit too small to start in": ("memory: 128Mi", "memory: 256Ki"),
}
# Rows whose change applies to every occurrence (both probes name the port).
EVERY = {"valid: probes on the port number instead of its name"}


def mutate(k8s: pathlib.Path, name: str, file: str, old: str, new: str) -> None:
    path = k8s / file
    text = path.read_text()
    for o, n in [(old, new)] + ([SECOND[name]] if name in SECOND else []):
        count = text.count(o)
        if count != 1 and not (name in EVERY and count > 1):
            sys.exit(f"mutation {name!r}: {o!r} occurs {count} times in {file}, expected once")
        text = text.replace(o, n)
    path.write_text(text)


def run_row(row, out: pathlib.Path) -> dict:
    name, kind, file, old, new, scenario, want_exit, words = row
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    work = out / slug
    shutil.rmtree(work, ignore_errors=True)
    k8s = work / "k8s"
    shutil.copytree(ROOT / "k8s", k8s)
    mutate(k8s, name, file, old, new)
    config = (ROOT / "stress.toml").read_text().replace(
        'manifests = "k8s"', f'manifests = "{k8s}"', 1)
    (work / "stress.toml").write_text(config)
    return gate(work, name, kind, scenario, want_exit, words, [])


def gate(work, name, kind, scenario, want_exit, words, extra) -> dict:
    """Runs the gate on `work/stress.toml` and checks its exit code and reports."""
    started = time.monotonic()
    log = work / "gate.log"
    with log.open("w") as f:
        code = subprocess.call(
            ["cargo", "xtask", "stress", "--backend", "local", "--config", str(work / "stress.toml"),
             "--scenario", scenario, "--out", str(work / "reports"), "--wait-timeout-s", "20"]
            + extra,
            cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=600)
    took = time.monotonic() - started
    reports = ""
    for artifact in ["junit.xml", "summary.md"]:
        p = work / "reports" / artifact
        if p.exists():
            reports += p.read_text()
    # The cause must be where people look: junit.xml or summary.md, not only the log.
    missing = [w for w in words if w not in reports]
    ok = code == want_exit and not missing
    return {"name": name, "kind": kind, "scenario": scenario, "want": want_exit, "got": code,
            "took": took, "missing": missing, "ok": ok, "log": str(log),
            "measured": throughput_figures(work / "reports" / "report.json")}


def throughput_figures(path: pathlib.Path) -> str:
    """The row's throughput (and its change against a baseline), so that a row that
    gets the wrong verdict says by how much without its scratch directory."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    figures = []
    for s in report.get("scenarios", []):
        rate = (s.get("load") or {}).get("throughput_per_s")
        if rate is not None:
            figures.append(f"{s.get('name')} {rate:.1f} req/s")
    for s in (report.get("against_baseline") or {}).get("scenarios", []):
        t = s.get("throughput_per_s") or {}
        if t.get("change_pct") is not None:
            figures.append(f"vs baseline {t['baseline']:.1f} req/s: {t['change_pct']:+.1f} %")
    return ", ".join(figures)


# The code rows: the service binary changed, its manifests, env and pods unchanged,
# judged against a baseline run of the unchanged service (`--baseline`). The slowdown
# is real CPU work: each prediction burns 50 % more CPU time than its cost knob says.
# restricted-2000 is the throughput-bound scenario (one pod at its 200m limit, closed
# loop): 50 % more CPU per request is 1/1.5 = 67 % of the throughput, measured -33 %
# (the per-request overhead outside the knob does not grow) against the [baseline]
# margin of 20 %. The row is a classifier's clear positive, not its boundary: a 30 %
# slowdown measured -21.3 ... -22.9 % here, 2-3 points beyond the margin, and one CI
# run (2f50d95) judged it green; a row that close to the line tests the noise, not the
# gate. Scenarios that may scale hide a slowdown behind another pod, as a cluster
# would. 800 requests (~20 s at fast timing) instead of 2000 keep the three runs
# short; the unchanged service against the same baseline is the noise row that must
# stay green.
SLOW_FILE = "crates/iris-server/src/cost.rs"
SLOW_OLD = "let completed = cpu.is_some_and(|cpu| cpu >= cost);"
SLOW_NEW = "let completed = cpu.is_some_and(|cpu| cpu >= cost.mul_f64(1.5));"
CODE_SCENARIO = "restricted-2000"
CODE_REQUESTS = ("requests = 2000", "requests = 800")
CODE_ROWS = [
    # (name, kind, binary: "unchanged" or "slow", expected exit, words)
    ("valid: the unchanged service against its own baseline", "valid", "unchanged", 0,
     ["## ✅ restricted-2000"]),
    ("the service 50 % slower in code", "broken", "slow", 1,
     ["throughput >= baseline - 20 %"]),
]


CODE_NAMES = {row[0] for row in CODE_ROWS}


def cargo_release_bin(package: str) -> pathlib.Path:
    """Builds `package`'s binary in release, as the local backend does; returns its path."""
    out = subprocess.run(
        ["cargo", "build", "--release", "-p", package, "--bin", package,
         "--message-format=json-render-diagnostics"],
        cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True, timeout=1200).stdout
    for line in reversed(out.splitlines()):
        if '"executable":"' in line:
            exe = json.loads(line).get("executable")
            if exe:
                return pathlib.Path(exe)
    sys.exit(f"cargo build -p {package} named no executable")


def build_slow_service(out: pathlib.Path) -> pathlib.Path:
    """A copy of iris-server built from its source with the slowdown patched in.

    The patch is made in place (a separate target directory would rebuild every
    dependency) and undone before anything else runs; a checkout with local changes
    to the file is refused rather than risked."""
    path = ROOT / SLOW_FILE
    if subprocess.call(["git", "diff", "--quiet", "--", SLOW_FILE], cwd=ROOT) != 0:
        sys.exit(f"{SLOW_FILE} has local changes: commit or stash them before the code rows")
    original = path.read_text()
    if original.count(SLOW_OLD) != 1:
        sys.exit(f"slowdown: {SLOW_OLD!r} occurs {original.count(SLOW_OLD)} times in {SLOW_FILE}")
    target = out / "slow-iris-server"
    try:
        path.write_text(original.replace(SLOW_OLD, SLOW_NEW))
        shutil.copy2(cargo_release_bin("iris-server"), target)
    finally:
        path.write_text(original)
    return target


def code_config(work: pathlib.Path, binary) -> None:
    """work/stress.toml: the repository's, the code scenario shortened and, given a
    binary, that binary standing for the service image instead of the built one."""
    work.mkdir(parents=True, exist_ok=True)
    config = (ROOT / "stress.toml").read_text()
    at = config.index(f'name = "{CODE_SCENARIO}"')
    old, new = CODE_REQUESTS
    shortened = config[at:].replace(old, new, 1)
    if shortened == config[at:]:
        sys.exit(f"stress.toml: {old!r} not found in scenario {CODE_SCENARIO}")
    config = config[:at] + shortened
    if binary is not None:
        entry = '[backend.local.containers.iris-server]\ncargo_bin = { package = "iris-server" }'
        if config.count(entry) != 1:
            sys.exit("stress.toml: the iris-server entry of [backend.local.containers] changed")
        config = config.replace(
            entry, f'[backend.local.containers.iris-server]\ncommand = ["{binary}"]')
    config = config.replace('manifests = "k8s"', f'manifests = "{ROOT / "k8s"}"', 1)
    (work / "stress.toml").write_text(config)


def run_code_row(row, out: pathlib.Path, binary: pathlib.Path, baseline: pathlib.Path) -> dict:
    name, kind, _, want_exit, words = row
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    work = out / slug
    shutil.rmtree(work, ignore_errors=True)
    code_config(work, binary)
    return gate(work, name, kind, CODE_SCENARIO, want_exit, words, ["--baseline", str(baseline)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "target" / "mutations"))
    parser.add_argument("--only", nargs="*", default=[], help="rows whose name contains one of these")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--jobs", type=int, default=2,
                        help="rows at once (default 2: most rows wait on a rollout or a "
                             "one-pod load; each row has its own simulated cluster)")
    args = parser.parse_args()
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = [r for r in ROWS if not args.only or any(o in r[0] for o in args.only)]
    code_rows = [r for r in CODE_ROWS if not args.only or any(o in r[0] for o in args.only)]
    # Before any other row builds and runs the service: the patch is undone by then.
    slow = build_slow_service(out) if code_rows else None
    # The two rows whose three pods scale under load go first, one per worker, so that
    # they never run side by side.
    heavy = [r for r in rows if r[1] == "valid"]
    light = [r for r in rows if r[1] != "valid"]
    order = []
    while heavy or light:
        for queue in (heavy, light, light):
            if queue:
                order.append(queue.pop(0))

    def report(result):
        mark = "ok  " if result["ok"] else "FAIL"
        print(f"{mark} {result['name']:<52} {result['scenario']:<14} exit {result['got']} "
              f"(want {result['want']}) {result['took']:5.0f} s"
              + (f"  [{result['measured']}]" if result["measured"] and result["kind"] != "broken"
                 or result["name"] in CODE_NAMES else "")
              + (f"  missing {result['missing']} in junit.xml/summary.md ({result['log']})"
                 if result["missing"] else ""),
              flush=True)
        return result

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(lambda row: report(run_row(row, out)), order))
    by_name = {r["name"]: r for r in done}
    results = [by_name[r[0]] for r in rows]
    if code_rows:
        # Alone, after the table: a throughput comparison must not share the CPU with
        # another row. First the baseline: the unchanged service, as main's run would be.
        base = out / "code-baseline"
        shutil.rmtree(base, ignore_errors=True)
        code_config(base, None)
        first = report(gate(base, "baseline: the unchanged service", "baseline", CODE_SCENARIO, 0,
                            [], []))
        results.append(first)
        unchanged = cargo_release_bin("iris-server")
        for row in code_rows:
            binary = slow if row[2] == "slow" else unchanged
            results.append(report(run_code_row(row, out, binary, base / "reports" / "report.json")))
    if args.markdown:
        print("\n| change | kind | scenario | expected | measured | time |\n|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r['name']} | {r['kind']} | {r['scenario']} | exit {r['want']} | exit {r['got']} "
                  f"| {r['took']:.0f} s |")
    failed = [r for r in results if not r["ok"]]
    print(f"\nmutations: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
