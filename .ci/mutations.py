#!/usr/bin/env python3
"""The mutation table: the gate's verdict on broken and valid variants of k8s/.

A gate is worth its verdict: each row changes the repository's manifests the way a
pull request could, runs one scenario on the local backend at fast timing, and checks
the exit code (0 pass, 1 an expectation failed, 2 setup or infrastructure failed) and
that junit.xml or summary.md names the cause in words a person understands. Broken
rows must go red with their cause named; valid rows must stay green.

Usage: python3 .ci/mutations.py [--out DIR] [--only NAME ...] [--jobs N] [--markdown]
Exit 0 when every row gave its expected verdict, 1 otherwise. Needs what the local
backend needs (Linux; root for CPU and memory limits and pod network namespaces).
"""

import argparse
import concurrent.futures
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
    started = time.monotonic()
    log = work / "gate.log"
    with log.open("w") as f:
        code = subprocess.call(
            ["cargo", "xtask", "stress", "--backend", "local", "--config", str(work / "stress.toml"),
             "--scenario", scenario, "--out", str(work / "reports"), "--wait-timeout-s", "20"],
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
            "took": took, "missing": missing, "ok": ok, "log": str(log)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "target" / "mutations"))
    parser.add_argument("--only", nargs="*", default=[], help="rows whose name contains one of these")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--jobs", type=int, default=2,
                        help="rows at once (default 2: most rows wait on a rollout or a "
                             "one-pod load; each row has its own simulated cluster)")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r for r in ROWS if not args.only or any(o in r[0] for o in args.only)]
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
              + (f"  missing {result['missing']} in junit.xml/summary.md ({result['log']})"
                 if result["missing"] else ""),
              flush=True)
        return result

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(lambda row: report(run_row(row, out)), order))
    by_name = {r["name"]: r for r in done}
    results = [by_name[r[0]] for r in rows]
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
