#!/usr/bin/env bash
# The telemetry overhead benchmark (BENCHMARKS.md "## Telemetry overhead", issue 3): max rps
# through the weft pair (client sidecar outbound -> server sidecar inbound -> upstream) with
# full telemetry against the same pair with telemetry off, in one run on this machine:
#   off   sampling 0, no collector (metrics are still recorded on /metrics: they cannot be
#         turned off, and the graph depends on them)
#   on    sampling 1.0 (every request: a CLIENT and a SERVER span), spans and metrics exported
#         over OTLP/gRPC to a real `weft collector` storing them in SQLite (temp dir)
# Both pairs run at the same time (idle when not measured), one worker thread each (as in
# bench/proxy/run.sh). The rounds alternate off/on (ROUNDS, default 5) with short closed-loop
# runs at 64 connections (DURATION, default 5s) after a warm-up, so the machine's load drifts
# alike over both; the ratio is on/off per round, and the median is the verdict. The
# collector runs on the same 2 cores: its CPU (decode + SQLite) is part of the cost measured.
# After each "on" run the script waits until both proxies' span queues are empty so that the
# collector's backlog does not slow the next "off" run. Spans exported, dropped (queue full)
# and stored are reported: a drop means the collector could not keep up, never a slow request.
# Per request the pair's user and system CPU, context switches (all threads) and minor page
# faults are reported too (from /proc), to tell the kernel's part of a cost from ours.
#
# PIN=1 pins the collector to CPU 1 and everything else (upstream, proxies, load generator) to
# CPU 0, in both modes: the collector then stands for one on another machine, and the ratio is
# the proxies' own telemetry cost. CPU 1 is then kept busy in both modes by a SCHED_IDLE spinner
# (it only takes the time the collector and anyone else leave): with CPU 1 idle in the "off"
# runs and busy (the collector) in the "on" runs, the "off" pair's rps moved by up to 3x with
# the state of CPU 1 alone, no collector involved (BENCHMARKS.md "## Telemetry overhead",
# "CPU 1's state"), so the ratio measured the host rather than the proxies.
#
# WEFT_COLLECTOR=path runs the collector from another binary than the proxies (default: the
# same), so that an A/B of two proxy builds keeps the same collector.
#
# RATE=N (with PIN=1) is the all-exported check: instead of max rps, each round runs both
# pairs open loop at N rps (low enough for the collector to store every span) and reports the
# CPU time per request of everything on CPU 0 (pair, upstream, load generator), and the spans
# exported and dropped during the rounds (check: none dropped). At max rps that CPU is
# saturated, so off/on of those times estimates the max-rps ratio with every span exported,
# optimistically: below saturation every request costs more (fewer events per wake-up), so the
# added µs per request (on - off) is the number to carry over to the max-rps cost per request.
#
# SINK=1 (with PIN=1) replaces the collector by bench/proxy/otlp-sink.py, which answers every
# OTLP/gRPC export OK without decoding or storing it: a collector on one core stores ~11-14 k
# spans/s while the pair at max rps makes ~40 k, so without it most spans are dropped at the
# proxies' queues and max rps never measures the cost of exporting every span. Check the spans
# dropped during the rounds: none.
#
# CALLGRIND=1 counts instructions instead (valgrind's callgrind; the counts do not depend on
# the machine's load, unlike rps): all four proxies run under callgrind, instrumentation off,
# both pairs are warmed up, then instrumentation is switched on and REQUESTS (default 2000)
# requests at 4 connections go through each pair; after the "on" pair's span queues are
# exported (a few seconds) it stops and the totals are divided by REQUESTS. The
# metric push interval is raised so that the wall time valgrind takes does not count pushes.
#
# Usage: bench/proxy/telemetry.sh   (or bench/proxy/run.sh telemetry)
#        WEFT=path/to/weft skips the build; OUT (default bench/proxy/telemetry-results.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib.sh
. "$ROOT/bench/lib.sh"
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-$ROOT/bench/proxy/telemetry-results.md}
WORK=$(mktemp -d /tmp/weft-telemetry-bench.XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export PATH="$HOME/.cargo/bin:/usr/sbin:$PATH"
need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light
fi
need oha || cargo install oha --locked

if [ -z "${WEFT:-}" ]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}
  (cd "$ROOT" && cargo build --release --bin weft)
  WEFT="$CARGO_TARGET_DIR/release/weft"
fi

LOAD_CPU=()
COLL_CPU=()
PROXY_WRAP=()
EXTRA=()
if [ "${CALLGRIND:-0}" = 1 ]; then
  need valgrind || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
  EXTRA=(--metrics-interval 3600)
fi
if [ "${PIN:-0}" = 1 ]; then
  LOAD_CPU=(taskset -c 0)
  COLL_CPU=(taskset -c 1)
fi

UPSTREAM=18700
OFF_A_OUT=18701; OFF_A_IN=18702; OFF_A_ADMIN=18703
OFF_B_OUT=18704; OFF_B_IN=18705; OFF_B_ADMIN=18706
ON_A_OUT=18711; ON_A_IN=18712; ON_A_ADMIN=18713
ON_B_OUT=18714; ON_B_IN=18715; ON_B_ADMIN=18716
COLL_HTTP=18720; COLL_GRPC=18721; COLL_OTLP_HTTP=18722

start() { # name, command...
  local name=$1; shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  echo $! >"$WORK/$name.pid"
}

wait_port() {
  for _ in $(seq 1 2400); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "port $1 never opened" >&2; exit 1
}

cat >"$WORK/upstream.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/upstream.pid.nginx;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UPSTREAM reuseport backlog=4096;
    location / { return 200 "ok"; }
  }
}
EOF
start upstream "${LOAD_CPU[@]}" nginx -c "$WORK/upstream.conf" -e stderr

mkdir -p "$WORK/data"
if [ "${SINK:-0}" = 1 ]; then
  SINK_PYTHON=python3
  if ! python3 -c 'import h2' 2>/dev/null; then
    [ -x "$HOME/.cache/weft-bench-venv/bin/python" ] || python3 -m venv "$HOME/.cache/weft-bench-venv"
    "$HOME/.cache/weft-bench-venv/bin/python" -c 'import h2' 2>/dev/null ||
      "$HOME/.cache/weft-bench-venv/bin/pip" install -q h2
    SINK_PYTHON="$HOME/.cache/weft-bench-venv/bin/python"
  fi
  start collector "${COLL_CPU[@]}" "$SINK_PYTHON" "$ROOT/bench/proxy/otlp-sink.py" "127.0.0.1:$COLL_GRPC"
  COLL_HTTP=$COLL_GRPC
else
  start collector "${COLL_CPU[@]}" "${WEFT_COLLECTOR:-$WEFT}" collector --db "sqlite://$WORK/data/weft.db" --http "127.0.0.1:$COLL_HTTP" \
    --otlp-grpc "127.0.0.1:$COLL_GRPC" --otlp-http "127.0.0.1:$COLL_OTLP_HTTP" --no-zipkin \
    --log warn
fi

service_entry "$WORK/mesh-off/mesh.yaml" $OFF_B_IN ", version: v1"
service_entry "$WORK/mesh-on/mesh.yaml" $ON_B_IN ", version: v1"
weft_proxy() { # name, workload, config, inbound, outbound, admin, extra args...
  local name=$1 workload=$2 config=$3 inbound=$4 outbound=$5 admin=$6; shift 6
  if [ "${CALLGRIND:-0}" = 1 ]; then
    PROXY_WRAP=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.$name")
  fi
  start "$name" "${LOAD_CPU[@]}" "${PROXY_WRAP[@]}" "$WEFT" proxy --threads 1 --workload "$workload" \
    --labels "app=$workload,version=v1" --config "$config" --app "127.0.0.1:$UPSTREAM" \
    --inbound "127.0.0.1:$inbound" --outbound "127.0.0.1:$outbound" \
    --admin "127.0.0.1:$admin" --log warn "${EXTRA[@]}" "$@"
}
wait_port $COLL_GRPC
weft_proxy off-a client "$WORK/mesh-off" 18707 $OFF_A_OUT $OFF_A_ADMIN --sampling 0
weft_proxy off-b upstream "$WORK/mesh-off" $OFF_B_IN $OFF_B_OUT $OFF_B_ADMIN --sampling 0
COLLECT=(--sampling 1 --collector "http://127.0.0.1:$COLL_GRPC")
weft_proxy on-a client "$WORK/mesh-on" 18717 $ON_A_OUT $ON_A_ADMIN "${COLLECT[@]}"
weft_proxy on-b upstream "$WORK/mesh-on" $ON_B_IN $ON_B_OUT $ON_B_ADMIN "${COLLECT[@]}"
for port in $UPSTREAM $OFF_A_OUT $OFF_B_IN $ON_A_OUT $ON_B_IN $COLL_HTTP; do wait_port $port; done
sleep 1

metric() { # admin port, metric name (with labels) -> value (0 when absent)
  curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { v = $2 } END { print v + 0 }'
}
queue_depth() { echo $(( $(metric $ON_A_ADMIN weft_proxy_span_queue_depth) + $(metric $ON_B_ADMIN weft_proxy_span_queue_depth) )); }
exported_total() { echo $(( $(metric $ON_A_ADMIN weft_proxy_spans_exported_total) + $(metric $ON_B_ADMIN weft_proxy_spans_exported_total) )); }
dropped_total() { echo $(( $(metric $ON_A_ADMIN 'weft_proxy_spans_dropped_total{reason="queue_full"}') + $(metric $ON_B_ADMIN 'weft_proxy_spans_dropped_total{reason="queue_full"}') + $(metric $ON_A_ADMIN 'weft_proxy_spans_dropped_total{reason="export_failed"}') + $(metric $ON_B_ADMIN 'weft_proxy_spans_dropped_total{reason="export_failed"}') )); }
cpu_ticks() { # pid -> utime+stime ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}
kernel_counts() { # pid -> "utime stime minflt csw" (ticks; minor faults; context switches of every thread)
  local stat csw
  stat=$(awk '{print $14, $15, $10}' "/proc/$1/stat")
  csw=$(cat "/proc/$1"/task/*/status 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches/ {n += $2} END {print n + 0}')
  echo "$stat $csw"
}
rps_of() { # url -> requests per second (closed loop, 64 connections; open loop at RATE)
  local out="$WORK/oha.json" rate=()
  if [ -n "${RATE:-}" ]; then rate=(-q "$RATE"); fi
  # `times` gives the load generator's own CPU (RATE mode counts it).
  ( "${LOAD_CPU[@]}" oha --no-tui --output-format json -H "Host: upstream" -z "$DURATION" -c 64 "${rate[@]}" "$1" >"$out"
    times >"$WORK/oha.times" )
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); s=d['statusCodeDistribution']; \
print(round(d['summary']['requestsPerSec']), s.get('200', 0), sum(s.values()))" "$out"
}

OFF_URL="http://127.0.0.1:$OFF_A_OUT/"
ON_URL="http://127.0.0.1:$ON_A_OUT/"

if [ "${CALLGRIND:-0}" = 1 ]; then
  REQUESTS=${REQUESTS:-2000}
  OUT=${OUT%.md}-callgrind.md
  for url in "$OFF_URL" "$ON_URL"; do
    "${LOAD_CPU[@]}" oha --no-tui -H "Host: upstream" -n 400 -c 4 "$url" >/dev/null
  done
  for _ in $(seq 1 100); do [ "$(queue_depth)" = 0 ] && break; sleep 0.2; done
  sleep 2
  for name in off-a off-b on-a on-b; do callgrind_control -i on "$(cat "$WORK/$name.pid")" >/dev/null; done
  for url in "$OFF_URL" "$ON_URL"; do
    "${LOAD_CPU[@]}" oha --no-tui --output-format json -H "Host: upstream" -n "$REQUESTS" -c 4 "$url" >"$WORK/oha.json"
    python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['statusCodeDistribution']; \
assert s.get('200', 0) == int(sys.argv[2]), s" "$WORK/oha.json" "$REQUESTS"
  done
  # The last batch waits up to 0.5 s in the queue; its export under valgrind takes a moment.
  # (Scraping /metrics meanwhile would count the scrapes.)
  sleep 5
  for name in off-a off-b on-a on-b; do
    pid=$(cat "$WORK/$name.pid")
    callgrind_control -i off "$pid" >/dev/null
    callgrind_control -d "$pid" >/dev/null
  done
  sleep 1
  echo "spans still queued: $(queue_depth)" >&2
  # The profiles, for callgrind_annotate.
  mkdir -p "${OUT%.md}.d" && cp "$WORK"/callgrind.* "${OUT%.md}.d/"
  python3 - "$WORK" "$REQUESTS" "$OUT" <<'EOF'
import glob, sys, datetime
work, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def total(name):
    ir = 0
    for path in glob.glob(f"{work}/callgrind.{name}*"):
        # "totals:" closes a dump ("summary:" above it stays 0 when instrumentation starts off).
        for line in open(path, errors="replace"):
            if line.startswith("totals:"):
                ir += int(line.split()[1])
    return ir
rows = [("outbound (client sidecar)", "off-a", "on-a"), ("inbound (server sidecar)", "off-b", "on-b")]
lines = [f"Callgrind {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: {n} requests "
         "per pair at 4 connections after a warm-up; instructions per request.\n",
         "| proxy | telemetry off (sampling 0) | on (sampling 1, exporting) | span cost |",
         "|---|---|---|---|"]
pair = [0, 0]
for label, off, on in rows:
    a, b = total(off) / n, total(on) / n
    pair[0] += a; pair[1] += b
    lines.append(f"| {label} | {a / 1000:.1f} k | {b / 1000:.1f} k | +{(b - a) / 1000:.1f} k |")
lines.append(f"| pair | {pair[0] / 1000:.1f} k | {pair[1] / 1000:.1f} k | +{(pair[1] - pair[0]) / 1000:.1f} k |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
EOF
  exit 0
fi
if [ "${PIN:-0}" = 1 ]; then
  need chrt || { echo "chrt (util-linux) is needed for PIN=1" >&2; exit 1; }
  start cpu1-spinner taskset -c 1 chrt --idle 0 sh -c 'while :; do :; done'
fi
# Warm up both pairs (connections, the collector's first writes).
"${LOAD_CPU[@]}" oha --no-tui -H "Host: upstream" -z 2s -c 64 "$OFF_URL" >/dev/null
"${LOAD_CPU[@]}" oha --no-tui -H "Host: upstream" -z 2s -c 64 "$ON_URL" >/dev/null
for _ in $(seq 1 100); do [ "$(queue_depth)" = 0 ] && break; sleep 0.2; done

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
# The warm-up's spans (dropped or not) are not the rounds'.
exported_before=$(exported_total)
dropped_before=$(dropped_total)
COLLECTOR_PID=$(cat "$WORK/collector.pid")
pair_ticks() { echo $(( $(cpu_ticks "$(cat "$WORK/$1-a.pid")") + $(cpu_ticks "$(cat "$WORK/$1-b.pid")") )); }
pair_counts() { # off|on -> the pair's kernel_counts, added up
  paste -d' ' <(kernel_counts "$(cat "$WORK/$1-a.pid")") <(kernel_counts "$(cat "$WORK/$1-b.pid")") |
    awk '{print $1 + $5, $2 + $6, $3 + $7, $4 + $8}'
}
counts_delta() { # before, after -> after - before, field by field
  paste -d' ' <(echo "$1") <(echo "$2") | awk '{print $5 - $1, $6 - $2, $7 - $3, $8 - $4}'
}
UPSTREAM_WORKER=$(pgrep -P "$(cat "$WORK/upstream.pid")" | head -n 1)
oha_ticks() { # the last run's user + system CPU, in clock ticks
  tail -n 1 "$WORK/oha.times" | python3 -c "import re,sys,os; \
print(round(sum(int(m)*60+float(s) for m,s in re.findall(r'(\d+)m([\d.]+)s', sys.stdin.read())) * os.sysconf('SC_CLK_TCK')))"
}
for round in $(seq 1 "$ROUNDS"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  off_before=$(pair_ticks off)
  off_counts=$(pair_counts off)
  up_before=$(cpu_ticks "$UPSTREAM_WORKER")
  read -r off_rps off_ok off_total <<<"$(rps_of "$OFF_URL")"
  off_cpu=$(( $(pair_ticks off) - off_before ))
  off_counts=$(counts_delta "$off_counts" "$(pair_counts off)")
  off_rest=$(( $(cpu_ticks "$UPSTREAM_WORKER") - up_before + $(oha_ticks) ))
  coll_before=$(cpu_ticks "$COLLECTOR_PID")
  on_before=$(pair_ticks on)
  on_counts=$(pair_counts on)
  up_before=$(cpu_ticks "$UPSTREAM_WORKER")
  read -r on_rps on_ok on_total <<<"$(rps_of "$ON_URL")"
  on_cpu=$(( $(pair_ticks on) - on_before ))
  on_counts=$(counts_delta "$on_counts" "$(pair_counts on)")
  on_rest=$(( $(cpu_ticks "$UPSTREAM_WORKER") - up_before + $(oha_ticks) ))
  coll_after=$(cpu_ticks "$COLLECTOR_PID")
  # Let the collector catch up before the next round.
  for _ in $(seq 1 150); do [ "$(queue_depth)" = 0 ] && break; sleep 0.2; done
  coll_drained=$(cpu_ticks "$COLLECTOR_PID")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$load" "$off_rps" "$off_ok/$off_total" \
    "$on_rps" "$on_ok/$on_total" "$((coll_after - coll_before))" "$((coll_drained - coll_before))" \
    "$(getconf CLK_TCK)" "$off_cpu" "$on_cpu" "$off_rest" "$on_rest" "$off_counts" "$on_counts" >>"$RESULTS"
  echo "round $round: off $off_rps rps, on $on_rps rps (load $load)" >&2
done

exported=$(exported_total)
dropped=$(dropped_total)
stored=$(python3 - "$WORK/data/weft.db" <<'EOF'
import sqlite3, sys, os
if not os.path.exists(sys.argv[1]):
    print("none (SINK=1: nothing is stored)")
    sys.exit()
try:
    print(sqlite3.connect(sys.argv[1]).execute("select count(*) from spans").fetchone()[0])
except Exception as error:
    print(f"? ({error})")
EOF
)

python3 - "$RESULTS" "$OUT" "$exported" "$dropped" "$stored" "$DURATION" "${PIN:-0}" "${RATE:-}" \
  "$((exported - exported_before))" "$((dropped - dropped_before))" <<'EOF'
import sys, datetime, platform, subprocess, statistics, os
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
rate = sys.argv[8]
exported, dropped, stored, duration = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                     capture_output=True, text=True).stdout.strip()
nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
pinned = " Pinned: the collector on CPU 1, all else on CPU 0." if sys.argv[7] == "1" else ""
if os.environ.get("SINK") == "1":
    pinned += " Spans go to bench/proxy/otlp-sink.py (answered OK, not stored) instead of a collector."
out = [f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()}: "
       f"{cpu}, {nproc} cores, Linux {platform.release()}; {len(rows)} rounds of {duration} "
       f"per mode, 64 connections, "
       f"{f'open loop at {rate} rps' if rate else 'closed loop'}.{pinned}\n"]
if rate:
    out += ["| round | load avg (1 min) | off: rps | off: ok/total | on: rps | on: ok/total | pair CPU µs/request off → on | CPU 0 µs/request (pair, upstream, load generator) off → on | off/on of those | collector CPU s during the on run | … until drained |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
else:
    out += ["| round | load avg (1 min) | off: rps | off: ok/total | on: rps | on: ok/total | on/off | pair CPU µs/request off → on | collector CPU s during the on run | … until drained |",
            "|---|---|---|---|---|---|---|---|---|---|"]
ratios = []
for r in rows:
    hz = float(r[8])
    total = lambda okt: max(int(okt.split("/")[1]), 1)
    off_us = int(r[9]) / hz / total(r[3]) * 1e6
    on_us = int(r[10]) / hz / total(r[5]) * 1e6
    if rate:
        # CPU 0 is saturated at max rps, so max rps is inversely proportional to these.
        off_all = (int(r[9]) + int(r[11])) / hz / total(r[3]) * 1e6
        on_all = (int(r[10]) + int(r[12])) / hz / total(r[5]) * 1e6
        ratio = off_all / max(on_all, 1e-9)
        ratios.append(ratio)
        out.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {off_us:.0f} → {on_us:.0f} | "
                   f"{off_all:.0f} → {on_all:.0f} | {ratio:.2f} | {int(r[6]) / hz:.2f} | {int(r[7]) / hz:.2f} |")
    else:
        ratio = float(r[4]) / max(float(r[2]), 1)
        ratios.append(ratio)
        out.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {ratio:.2f} | "
                   f"{off_us:.0f} → {on_us:.0f} | {int(r[6]) / hz:.2f} | {int(r[7]) / hz:.2f} |")
median = statistics.median(ratios)
out.append("")
what = "Estimated max-rps ratio on/off (CPU 0 µs/request off/on)" if rate else "Median on/off"
out.append(f"{what}: **{median:.2f}** (median; min {min(ratios):.2f}, max {max(ratios):.2f}); "
           f"target ≥ 0.90: **{'met' if median >= 0.9 else 'missed'}**.")
out.append(f"Spans: {exported} exported by the two proxies, {dropped} dropped, {stored} stored by the collector; "
           f"during the rounds (after the warm-up): {sys.argv[9]} exported, {sys.argv[10]} dropped.")
out += ["", "The pair's user and system CPU, context switches (every thread) and minor page faults per request:", "",
        "| round | user µs off → on | system µs off → on | context switches off → on | minor faults off → on |",
        "|---|---|---|---|---|"]
for r in rows:
    hz = float(r[8])
    per = lambda counts, okt: [float(v) / max(int(okt.split("/")[1]), 1) for v in counts.split()]
    off, on = per(r[13], r[3]), per(r[14], r[5])
    out.append(f"| {r[0]} | {off[0] / hz * 1e6:.1f} → {on[0] / hz * 1e6:.1f} | {off[1] / hz * 1e6:.1f} → {on[1] / hz * 1e6:.1f} | "
               f"{off[3]:.2f} → {on[3]:.2f} | {off[2]:.3f} → {on[2]:.3f} |")
text = "\n".join(out) + "\n"
open(sys.argv[2], "w").write(text)
print(text)
EOF
