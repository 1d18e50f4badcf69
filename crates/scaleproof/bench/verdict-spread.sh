#!/usr/bin/env bash
# How much the gate's figures move when nothing but the phases changes: every scenario
# of stress.toml at kind timing on the local backend, once per seed (each seed draws
# other metrics-server scrape phases, kubelet housekeeping waits and pod start delays),
# then per scenario the min / median / max of throughput, p95, first scale-up and time
# back to minReplicas, how many runs failed, and every ordered pair of runs judged one
# against the other as `stress --baseline` would (main's run as the baseline, a PR's as
# the current one): a pair that fails is a PR that noise alone would turn red.
#
# Usage: crates/scaleproof/bench/verdict-spread.sh [-j JOBS] [-o DIR] SEED [SEED ...]
#   -j JOBS  gates at once (default 1). At kind timing a gate spends most of its time
#            waiting (pods capped at 200m, three at most), so 2 fit on 2 cores; more
#            would let the machine, not the phases, move the figures. With JOBS > 1
#            each gate runs `--lanes 1`: a gate's lanes already take the machine's
#            CPUs as their node, and two gates of two lanes each put four scenarios'
#            limits (3.2 CPU) on 2 cores (seed 404 and 505 then failed on p95 and
#            plateau checks that hold with one gate).
#   -o DIR   where each run's reports go (default target/verdict-spread): DIR/seed-N/.
# Example: crates/scaleproof/bench/verdict-spread.sh -j 2 11 22 33 44 55
#
# A run takes ~10 minutes. Needs root for CPU limits (otherwise the pods run uncapped
# and report.json says so). Exit 0 when every run passed and every pair held, else 1.
set -euo pipefail
cd "$(dirname "$0")/../../.."

jobs=1
out=target/verdict-spread
while getopts "j:o:h" opt; do
  case "$opt" in
    j) jobs="$OPTARG" ;;
    o) out="$OPTARG" ;;
    h) sed -n '2,18p' "$0"; exit 0 ;;
    *) sed -n '2,18p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ "$#" -ge 2 ] || { echo "verdict-spread: give at least two seeds (pairs need two runs)" >&2; exit 2; }
for seed in "$@"; do
  [[ "$seed" =~ ^[0-9]+$ ]] || { echo "verdict-spread: seed '$seed' is not a whole number" >&2; exit 2; }
done
mkdir -p "$out"

# Build once (the harness, the service, the scenario tests), so that parallel runs
# start together instead of queueing on cargo's lock one compile after the other.
cargo build --quiet -p scaleproof --bin scaleproof
cargo build --quiet --release -p iris-server --bin iris-server
cargo test --quiet -p stress-tests --test scenarios --no-run
scaleproof=target/debug/scaleproof
lanes=auto
if [ "$jobs" -gt 1 ]; then
  lanes=1
  echo "$jobs gates at once: each runs --lanes 1, so the machine holds at most $jobs scenarios"
fi

run_seed() {
  local seed="$1" dir="$out/seed-$1"
  rm -rf "$dir"
  local started=$SECONDS
  set +e
  cargo xtask stress --backend local --set backend.local.timing=kind --lanes "$lanes" \
    --set "backend.local.seed=$seed" --out "$dir" > "$out/seed-$seed.log" 2>&1
  local code=$?
  set -e
  echo "$code $((SECONDS - started))" > "$out/seed-$seed.exit"
  echo "seed $seed: exit $code after $((SECONDS - started)) s ($out/seed-$seed.log)"
}

running=0
for seed in "$@"; do
  run_seed "$seed" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

# Every ordered pair: the first as the baseline, the second judged against it.
pairs="$out/pairs.jsonl"
: > "$pairs"
for a in "$@"; do
  for b in "$@"; do
    [ "$a" = "$b" ] && continue
    [ -s "$out/seed-$a/report.json" ] && [ -s "$out/seed-$b/report.json" ] || continue
    set +e
    json=$("$scaleproof" baseline compare --json --baseline "$out/seed-$a/report.json" \
      "$out/seed-$b/report.json")
    set -e
    printf '{"baseline": %s, "current": %s, "result": %s}\n' "$a" "$b" \
      "$(printf '%s' "$json" | tr -d '\n')" >> "$pairs"
  done
done

python3 - "$out" "$pairs" "$@" <<'PY'
import json, statistics, sys

out, pairs_path, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = {}
failed_runs = []
for seed in seeds:
    code, took = open(f"{out}/seed-{seed}.exit").read().split()
    try:
        runs[seed] = json.load(open(f"{out}/seed-{seed}/report.json"))
    except (OSError, ValueError):
        runs[seed] = None
    if code != "0":
        failed_runs.append(f"seed {seed} (exit {code})")
    print(f"seed {seed}: exit {code}, {took} s")

def figure(s, name):
    load = s.get("load") or {}
    return {
        "throughput req/s": load.get("throughput_per_s"),
        "p95 ms": (load.get("latency_ms") or {}).get("p95_ms"),
        "first scale-up s": s.get("first_scale_up_s"),
        "back to min s": s.get("back_to_min_s"),
        "scenario s": s.get("duration_s"),
    }[name]

names = []
for report in runs.values():
    for s in (report or {}).get("scenarios", []):
        if s["name"] not in names:
            names.append(s["name"])
figures = ["throughput req/s", "p95 ms", "first scale-up s", "back to min s", "scenario s"]
print()
print(f"{'scenario':<18} {'figure':<18} {'min':>9} {'median':>9} {'max':>9}  runs  failed")
for name in names:
    scenarios = [s for r in runs.values() if r for s in r["scenarios"] if s["name"] == name]
    failed = sum(1 for s in scenarios if s.get("error") or any(v["outcome"] != "pass" for v in s["verdicts"]))
    for f in figures:
        values = [figure(s, f) for s in scenarios]
        values = [v for v in values if v is not None]
        if not values:
            continue
        print(f"{name:<18} {f:<18} {min(values):>9.1f} {statistics.median(values):>9.1f} "
              f"{max(values):>9.1f}  {len(values):>4}  {failed:>6}")

# The worst pair per figure: the least headroom (limit minus value; negative fails).
worst = {}
failed_pairs = []
for line in open(pairs_path):
    pair = json.loads(line)
    result = pair["result"]
    for v in result.get("baseline", []):
        if v["outcome"] != "pass":
            failed_pairs.append(f"{pair['current']} against {pair['baseline']}: {v['check']}: {v['measured']}")
    for d in result.get("against_baseline", {}).get("scenarios", []):
        m = d["margins"]
        checks = {
            "throughput": (d["throughput_per_s"], lambda now, b: now - b * (1 - m["throughput"])),
            "p95": (d["p95_ms"], lambda now, b: b * (1 + m["p95"]) + m["p95_slack_ms"] - now),
            "first_scale_up": (d["first_scale_up_s"],
                               lambda now, b: b * (1 + m["first_scale_up"]) + m["first_scale_up_slack_s"] - now),
        }
        for check, (delta, headroom) in checks.items():
            if delta.get("now") is None or delta.get("baseline") is None:
                continue
            room = headroom(delta["now"], delta["baseline"])
            key = (d["name"], check)
            if key not in worst or room < worst[key][0]:
                worst[key] = (room, pair["baseline"], pair["current"], delta["now"], delta["baseline"])
print()
print("worst pair per figure (baseline seed -> current seed; headroom < 0 fails):")
for (name, check), (room, a, b, now, base) in sorted(worst.items()):
    print(f"  {name:<18} {check:<15} {base:>8.1f} -> {now:>8.1f}  seeds {a} -> {b}  headroom {room:+.1f}")
pairs = sum(1 for _ in open(pairs_path))
print()
print(f"{len(seeds) - len(failed_runs)} of {len(seeds)} runs passed; "
      f"{pairs - len({p.split(':')[0] for p in failed_pairs})} of {pairs} ordered pairs passed the baseline suite")
for f in failed_runs:
    print(f"  failed run: {f}")
for f in failed_pairs:
    print(f"  failed pair: {f}")
sys.exit(1 if failed_runs or failed_pairs else 0)
PY
