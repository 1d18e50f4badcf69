#!/usr/bin/env bash
# Throughput of iris-server confined to 200m of CPU (a 20 ms per 100 ms CFS quota, the
# pod limit in k8s/deployment.yaml), measured with wrk over loopback.
#
# Usage (as root, from anywhere):
#   crates/iris-server/bench/capped-throughput.sh [iris-server flags...]
# e.g.  capped-throughput.sh --worker-threads 2    (defaults: --cpu-cost-ms 0, 1 worker)
# Knobs (environment): DURATION (15s), CONNECTIONS (10), WRK_THREADS (1),
#   CPU_QUOTA_US (20000), CPU_PERIOD_US (100000), CARGO_TARGET_DIR.
#
# The reference: the original FastAPI + scikit-learn app serves about 250 req/s under
# the same cap; the goal for iris-server is 10,000 req/s or more.
set -euo pipefail

DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-10}
WRK_THREADS=${WRK_THREADS:-1}
CPU_QUOTA_US=${CPU_QUOTA_US:-20000}
CPU_PERIOD_US=${CPU_PERIOD_US:-100000}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}
binary=$target_dir/release/iris-server

die() { echo "capped-throughput: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root to create a cgroup"
command -v curl >/dev/null || die "curl is missing (apt-get install -y curl)"
if ! command -v wrk >/dev/null; then
    echo "wrk is missing; installing it with apt-get" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null || die "could not install wrk"
fi

echo "== building iris-server (release)"
(cd "$repo_root" && cargo build --release --quiet -p iris-server) || die "cargo build failed"

workdir=$(mktemp -d)
cgroup=""
server_pid=""

cleanup() {
    local status=$?
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        # Bounded wait: the server drains in well under its 20 s timeout when idle.
        for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n $cgroup && -d $cgroup ]]; then
        rmdir "$cgroup" 2>/dev/null || echo "capped-throughput: could not remove $cgroup" >&2
    fi
    rm -rf "$workdir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A cgroup with the CPU quota: cgroup v2 if the unified hierarchy is mounted and
# writable, else the v1 cpu controller.
name="iris-bench-$$"
if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs && -w /sys/fs/cgroup ]]; then
    grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control \
        || echo "+cpu" > /sys/fs/cgroup/cgroup.subtree_control
    cgroup=/sys/fs/cgroup/$name
    mkdir "$cgroup"
    echo "$CPU_QUOTA_US $CPU_PERIOD_US" > "$cgroup/cpu.max"
    echo "== cgroup v2 $cgroup cpu.max=\"$(cat "$cgroup/cpu.max")\""
elif [[ -w /sys/fs/cgroup/cpu ]]; then
    cgroup=/sys/fs/cgroup/cpu/$name
    mkdir "$cgroup"
    echo "$CPU_PERIOD_US" > "$cgroup/cpu.cfs_period_us"
    echo "$CPU_QUOTA_US" > "$cgroup/cpu.cfs_quota_us"
    echo "== cgroup v1 $cgroup quota=$(cat "$cgroup/cpu.cfs_quota_us")us period=$(cat "$cgroup/cpu.cfs_period_us")us"
else
    die "no writable cgroup (v2 /sys/fs/cgroup or v1 /sys/fs/cgroup/cpu)"
fi

# The shell moves itself into the cgroup, then becomes the server (same pid). The cost
# defaults to 0 through the environment so a --cpu-cost-ms flag given here overrides it.
log=$workdir/server.log
sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$cgroup" \
    env IRIS_CPU_COST_MS=0 "$binary" --host 127.0.0.1 --port 0 "$@" >"$log" 2>&1 &
server_pid=$!

address=""
for _ in $(seq 200); do
    address=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$log" | head -n1 | cut -d' ' -f3 || true)
    [[ -n $address ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "server exited during start-up"; }
    sleep 0.1
done
[[ -n $address ]] || { cat "$log" >&2; die "no 'listening on' line within 20 s"; }
for _ in $(seq 200); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$address/ready") == 200 ]] && break
    sleep 0.1
done
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://$address/ready") == 200 ]] || die "server never became ready"
echo "== server pid $server_pid on $address, extra flags: ${*:-none}"

cat > "$workdir/predict.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'
LUA

stat_file=$cgroup/cpu.stat
before=$(cat "$stat_file")
echo "== wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency POST /predict"
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
    -s "$workdir/predict.lua" "http://$address/predict" | tee "$workdir/wrk.out"
after=$(cat "$stat_file")

# Throttling shows the quota was really in force during the run.
field() { awk -v key="$1" '$1 == key { print $2 }' <<<"$2"; }
periods=$(( $(field nr_periods "$after") - $(field nr_periods "$before") ))
throttled=$(( $(field nr_throttled "$after") - $(field nr_throttled "$before") ))
echo "== cgroup: $throttled of $periods CPU periods throttled during the run"
rps=$(awk '/^Requests\/sec:/ { print $2 }' "$workdir/wrk.out")
errors=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$workdir/wrk.out")
echo "== RESULT: ${rps} req/s under ${CPU_QUOTA_US}/${CPU_PERIOD_US} us CPU quota, non-2xx: ${errors:-0}"
