#!/usr/bin/env bash
# Compares `scaleproof load` with wrk, hey and oha, side by side in one run:
# keep-alive POST of a small JSON body to nginx (`return 200`, one worker) on
# loopback. Reports median throughput and CPU time per request over several
# alternating rounds, then shows that scaleproof's memory stays flat as the
# request count grows (peak RSS at 1,000,000 vs 10,000 requests).
#
# Usage: crates/load/bench/loadgen-compare.sh [--with-oha] [--rounds N]
#          [--duration SECONDS] [--connections N] [--port PORT] [--bin PATH]
#   --with-oha   install oha with `cargo install oha --locked` if missing
#                (compiles for minutes; without the flag oha runs only when present)
#   --bin PATH   scaleproof binary to measure (default: cargo build --release)
# Needs root for apt-get when nginx, wrk, hey, GNU time or python3 are missing.
set -euo pipefail

ROUNDS=3
DURATION=10
CONNECTIONS=50
PORT=18089
WITH_OHA=0
BIN=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --with-oha) WITH_OHA=1 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --connections) CONNECTIONS="$2"; shift ;;
        --port) PORT="$2"; shift ;;
        --bin) BIN="$2"; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

REPO="$(cd "$(dirname "$0")/../../.." && pwd)"
BODY='{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}'
URL="http://127.0.0.1:${PORT}/predict"

# --- tools -------------------------------------------------------------------
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v hey >/dev/null || missing+=(hey)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v python3 >/dev/null || missing+=(python3)
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "installing ${missing[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v oha >/dev/null && [[ $WITH_OHA == 1 ]]; then
    echo "installing oha with cargo (takes minutes)" >&2
    cargo install oha --locked
fi
TOOLS=(wrk hey scaleproof)
command -v oha >/dev/null && TOOLS=(wrk oha hey scaleproof)

if [[ -z $BIN ]]; then
    echo "building scaleproof (release)" >&2
    (cd "$REPO" && cargo build --release -p scaleproof --bin scaleproof >&2)
    BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/scaleproof"
fi
[[ -x $BIN ]] || { echo "no scaleproof binary at $BIN" >&2; exit 2; }

# --- nginx, stopped on every exit path ----------------------------------------
WORK="$(mktemp -d)"
NGINX_PID=""
cleanup() {
    if [[ -n $NGINX_PID ]] && kill -0 "$NGINX_PID" 2>/dev/null; then
        kill "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/client_body;
    proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi;
    uwsgi_temp_path $WORK/uwsgi;
    scgi_temp_path $WORK/scgi;
    # Never close keep-alive connections during a run: every tool reuses them.
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:${PORT};
        location / { return 200; }
    }
}
EOF
nginx -c "$WORK/nginx.conf" -p "$WORK" &
NGINX_PID=$!
for _ in $(seq 50); do
    bash -c "exec 3<>/dev/tcp/127.0.0.1/${PORT}" 2>/dev/null && break
    sleep 0.1
done
kill -0 "$NGINX_PID" || { echo "nginx did not start: $(cat "$WORK/error.log")" >&2; exit 1; }

cat >"$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
EOF

# --- one measurement: prints "requests cpu_seconds peak_rss_kib" ----------------
# GNU time writes user, system and max RSS; each tool's own output gives the
# request count.
measure() {
    local tool=$1 out="$WORK/$1.out" timing="$WORK/$1.time"
    local timed=(/usr/bin/time -f '%U %S %M' -o "$timing")
    case "$tool" in
        wrk)
            "${timed[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/post.lua" "$URL" >"$out"
            requests=$(awk '/requests in/ {print $1}' "$out") ;;
        hey)
            "${timed[@]}" hey -z "${DURATION}s" -c "$CONNECTIONS" -m POST -T application/json -d "$BODY" "$URL" >"$out"
            requests=$(awk '/\[[0-9]+\][[:space:]]+[0-9]+ responses/ {n += $2} END {print n + 0}' "$out") ;;
        oha)
            "${timed[@]}" oha --no-tui --output-format json -z "${DURATION}s" -c "$CONNECTIONS" -m POST -T application/json -d "$BODY" "$URL" >"$out"
            requests=$(python3 -c 'import json,sys; print(sum(json.load(open(sys.argv[1]))["statusCodeDistribution"].values()))' "$out") ;;
        scaleproof)
            "${timed[@]}" "$BIN" load --json --no-progress -z "${DURATION}s" -c "$CONNECTIONS" -d "$BODY" "$URL" >"$out"
            requests=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sent"])' "$out") ;;
    esac
    read -r user sys rss <"$timing"
    echo "$requests $(python3 -c "print($user + $sys)") $rss"
}

# --- rounds, rotating the order so no tool always runs first or last -----------
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
    n=${#TOOLS[@]}
    for i in $(seq 0 $((n - 1))); do
        tool=${TOOLS[$(((i + round - 1) % n))]}
        read -r requests cpu rss < <(measure "$tool")
        printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$tool" "$requests" "$cpu" "$rss" >>"$RESULTS"
        printf 'round %s %-10s %9s requests  %6.2f s CPU\n' "$round" "$tool" "$requests" "$cpu" >&2
    done
done

# --- memory: peak RSS at 10,000 vs 1,000,000 requests ---------------------------
rss_for() {
    /usr/bin/time -f '%M' -o "$WORK/rss.time" "$BIN" load --json --no-progress -n "$1" -c "$CONNECTIONS" -d "$BODY" "$URL" >/dev/null
    cat "$WORK/rss.time"
}
RSS_SMALL=$(rss_for 10000)
RSS_LARGE=$(rss_for 1000000)

python3 - "$RESULTS" "$DURATION" "$CONNECTIONS" "$ROUNDS" "$RSS_SMALL" "$RSS_LARGE" <<'EOF'
import statistics, sys
path, duration, connections, rounds, rss_small, rss_large = sys.argv[1:]
rows = {}
for line in open(path):
    _, tool, requests, cpu, rss = line.split("\t")
    rows.setdefault(tool, []).append((int(requests), float(cpu), int(rss)))
print(f"\nPOST small JSON body to nginx (return 200, 1 worker), loopback, "
      f"{connections} connections, {duration} s, median of {rounds} rounds\n")
print("| tool | req/s | CPU µs/request | peak RSS MiB |")
print("|---|---:|---:|---:|")
for tool, runs in rows.items():
    rps = statistics.median(r / float(duration) for r, _, _ in runs)
    cpu_us = statistics.median(c / r * 1e6 for r, c, _ in runs if r)
    rss = statistics.median(m for _, _, m in runs) / 1024
    print(f"| {tool} | {rps:,.0f} | {cpu_us:.2f} | {rss:.1f} |")
small, large = int(rss_small), int(rss_large)
change = (large - small) / small * 100
verdict = "flat" if abs(change) <= 10 else "NOT flat"
print(f"\nscaleproof peak RSS: {small / 1024:.1f} MiB at 10,000 requests, "
      f"{large / 1024:.1f} MiB at 1,000,000 ({change:+.1f} %, {verdict})")
EOF
