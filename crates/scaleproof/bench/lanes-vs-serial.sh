#!/usr/bin/env bash
# What parallel lanes buy and cost: every scenario of stress.toml at kind timing on the
# local backend, per seed once with `--lanes 1` (one scenario at a time, file order)
# and once with `--lanes auto`, one run after the other, never side by side. Then per
# scenario the throughput and p95 of both runs, the lanes run judged against the
# serial one as `stress --baseline` would ([baseline] margins of stress.toml), and
# the wall time of each gate (the scaleproof process, setup included).
#
# Usage: crates/scaleproof/bench/lanes-vs-serial.sh [-o DIR] [-n] SEED [SEED ...]
#   -o DIR  where the runs go (default target/lanes-vs-serial): DIR/seed-N-lanes-{1,auto}/
#   -n      do not run; judge the runs already in DIR
# Example: crates/scaleproof/bench/lanes-vs-serial.sh 101
#
# A pair takes ~17 minutes on 2 cores. Needs root for CPU limits (otherwise the pods
# run uncapped and report.json says so). Exit 0 when every run passed and every lanes
# run held its serial baseline, else 1.
set -euo pipefail
cd "$(dirname "$0")/../../.."

out=target/lanes-vs-serial
run=1
while getopts "o:nh" opt; do
  case "$opt" in
    o) out="$OPTARG" ;;
    n) run=0 ;;
    h) sed -n '2,17p' "$0"; exit 0 ;;
    *) sed -n '2,17p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ "$#" -ge 1 ] || { echo "lanes-vs-serial: give at least one seed" >&2; exit 2; }
for seed in "$@"; do
  [[ "$seed" =~ ^[0-9]+$ ]] || { echo "lanes-vs-serial: seed '$seed' is not a whole number" >&2; exit 2; }
done
mkdir -p "$out"

if [ "$run" = 1 ]; then
  # Build first, so that neither run's wall time includes a compile.
  cargo build --quiet -p scaleproof --bin scaleproof
  cargo build --quiet --release -p iris-server --bin iris-server
  cargo test --quiet -p stress-tests --test scenarios --no-run
  for seed in "$@"; do
    for lanes in 1 auto; do
      dir="$out/seed-$seed-lanes-$lanes"
      rm -rf "$dir"
      started=$(date +%s.%N)
      set +e
      cargo xtask stress --backend local --set backend.local.timing=kind \
        --set "backend.local.seed=$seed" --lanes "$lanes" --out "$dir" > "$dir.log" 2>&1
      code=$?
      set -e
      echo "$code $(echo "$(date +%s.%N) - $started" | bc)" > "$dir.exit"
      echo "seed $seed, --lanes $lanes: exit $code ($dir.log)"
    done
  done
fi

scaleproof=target/debug/scaleproof
for seed in "$@"; do
  serial="$out/seed-$seed-lanes-1/report.json" lanes="$out/seed-$seed-lanes-auto/report.json"
  [ -s "$serial" ] && [ -s "$lanes" ] || continue
  set +e
  "$scaleproof" baseline compare --json --baseline "$serial" "$lanes" > "$out/seed-$seed-compare.json"
  set -e
done

python3 - "$out" "$@" <<'PY'
import json, statistics, sys

out, seeds = sys.argv[1], sys.argv[2:]
failed = []
walls = {"1": [], "auto": []}
rows = []
for seed in seeds:
    runs = {}
    for lanes in ("1", "auto"):
        base = f"{out}/seed-{seed}-lanes-{lanes}"
        try:
            code, took = open(f"{base}.exit").read().split()
            runs[lanes] = json.load(open(f"{base}/report.json"))
        except (OSError, ValueError) as e:
            failed.append(f"seed {seed} --lanes {lanes}: no report ({e})")
            continue
        walls[lanes].append(float(took))
        if code != "0":
            failed.append(f"seed {seed} --lanes {lanes}: exit {code}")
        plan = runs[lanes]["run"].get("lanes") or {}
        print(f"seed {seed} --lanes {lanes:<4}: exit {code}, {float(took):6.1f} s; {plan.get('reason')}")
    if len(runs) < 2:
        continue
    try:
        compare = json.load(open(f"{out}/seed-{seed}-compare.json"))
    except (OSError, ValueError) as e:
        failed.append(f"seed {seed}: no comparison ({e})")
        continue
    for v in compare.get("baseline", []):
        if v["outcome"] != "pass":
            failed.append(f"seed {seed}: {v['check']}: {v['measured']}")
    serial = {s["name"]: s for s in runs["1"]["scenarios"]}
    for s in runs["auto"]["scenarios"]:
        b = serial.get(s["name"])
        if not b or not s.get("load") or not b.get("load"):
            continue
        lane = s.get("lane") or {}
        rows.append((seed, s["name"], b["load"]["throughput_per_s"], s["load"]["throughput_per_s"],
                     b["load"]["latency_ms"]["p95_ms"], s["load"]["latency_ms"]["p95_ms"],
                     b["duration_s"], s["duration_s"], lane.get("lane"), ", ".join(lane.get("beside", [])) or "-"))
margin = None
for seed in seeds:
    try:
        compare = json.load(open(f"{out}/seed-{seed}-compare.json"))
        margin = compare["against_baseline"]["scenarios"][0]["margins"]["throughput"]
        break
    except (OSError, ValueError, KeyError, IndexError):
        pass
print()
print(f"{'seed':<5} {'scenario':<18} {'req/s 1':>8} {'req/s N':>8} {'ratio':>6} "
      f"{'p95 1':>8} {'p95 N':>8} {'s 1':>6} {'s N':>6}  lane  beside")
for seed, name, t1, tn, p1, pn, d1, dn, lane, beside in rows:
    print(f"{seed:<5} {name:<18} {t1:>8.1f} {tn:>8.1f} {tn / t1:>6.2f} "
          f"{p1:>8.0f} {pn:>8.0f} {d1:>6.1f} {dn:>6.1f}  {lane!s:>4}  {beside}")
if margin is not None:
    print(f"\nthroughput margin of [baseline]: {margin:.2f} (lanes may lose at most {margin:.0%})")
if walls["1"] and walls["auto"]:
    w1, wn = statistics.median(walls["1"]), statistics.median(walls["auto"])
    print(f"wall time, median of {len(walls['1'])}: --lanes 1 {w1:.0f} s, --lanes auto {wn:.0f} s, "
          f"ratio {wn / w1:.2f}")
for f in failed:
    print(f"  failed: {f}")
sys.exit(1 if failed else 0)
PY
