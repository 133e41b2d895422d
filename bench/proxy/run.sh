#!/usr/bin/env bash
# The proxy benchmark (BENCHMARKS.md "## Proxy"): client -> proxy -> upstream and
# client -> proxy -> proxy -> upstream for weft (outbound -> inbound sidecar), haproxy and nginx,
# against direct, in one run on this machine. Every proxy gets one worker thread (weft
# --threads 1, haproxy nbthread 1, nginx worker_processes 1). The upstream is nginx serving a
# fixed 2-byte body.
#
# Measures: max rps at 64 connections (closed loop), p50/p99 at fixed 1,000 and 5,000 rps
# (open loop, oha -q with --latency-correction), proxy CPU seconds per 10k requests (user +
# system, from /proc during the max-rps run), proxy RSS idle (as started, before any traffic)
# and the peak during the 1,000 rps run. For pairs, CPU and RSS are summed over both proxies. Writes a Markdown report to $OUT (default
# bench/proxy/results.md) and prints it.
#
# Usage: bench/proxy/run.sh            (DURATION=10s by default; DURATION=5s for a quick run)
#        bench/proxy/run.sh telemetry  the telemetry overhead benchmark (bench/proxy/telemetry.sh)
#        WEFT=path/to/weft skips the build and measures that binary.
# Installs what is missing: nginx, haproxy (Debian packages), oha (cargo install).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib.sh
. "$ROOT/bench/lib.sh"
if [ "${1:-}" = telemetry ]; then
  exec "$ROOT/bench/proxy/telemetry.sh"
fi
DURATION=${DURATION:-10s}
OUT=${OUT:-$ROOT/bench/proxy/results.md}
WORK=$(mktemp -d /tmp/weft-bench.XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if ! need nginx || ! need haproxy; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light haproxy
fi
export PATH="$HOME/.cargo/bin:/usr/sbin:$PATH"
if ! command -v oha >/dev/null 2>&1; then
  cargo install oha --locked
fi

if [ -z "${WEFT:-}" ]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}
  (cd "$ROOT" && cargo build --release --bin weft)
  WEFT="$CARGO_TARGET_DIR/release/weft"
fi

# Ports.
UPSTREAM=18080
NGINX_A=18081; NGINX_B=18082
HAPROXY_A=18083; HAPROXY_B=18084
WEFT_OUT=18085; WEFT_IN=18086; WEFT_ADMIN_A=18087; WEFT_ADMIN_B=18088
WEFT1_OUT=18089; WEFT1_IN=18090; WEFT1_ADMIN=18091
WEFT_B_OUT=18092

start() { # name, command...
  local name=$1; shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  echo $! >"$WORK/$name.pid"
}

wait_port() {
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "port $1 never opened" >&2; exit 1
}

# --- upstream and nginx ------------------------------------------------------------------
nginx_conf() { # file, listen, body (location block)
  cat >"$1" <<EOF
worker_processes 1;
daemon off;
pid $1.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream next { server 127.0.0.1:$3; keepalive 128; }
  server {
    listen 127.0.0.1:$2 reuseport backlog=4096;
    location / { $4 }
  }
}
EOF
}
nginx_conf "$WORK/upstream.conf" $UPSTREAM 1 'return 200 "ok";'
PROXY_BLOCK='proxy_pass http://next; proxy_http_version 1.1; proxy_set_header Connection "";'
nginx_conf "$WORK/nginx-a.conf" $NGINX_A $NGINX_B "$PROXY_BLOCK"
nginx_conf "$WORK/nginx-b.conf" $NGINX_B $UPSTREAM "$PROXY_BLOCK"
start upstream nginx -c "$WORK/upstream.conf" -e stderr
start nginx-a nginx -c "$WORK/nginx-a.conf" -e stderr
start nginx-b nginx -c "$WORK/nginx-b.conf" -e stderr

# --- haproxy -----------------------------------------------------------------------------
haproxy_conf() { # file, listen, next
  cat >"$1" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend in
  bind 127.0.0.1:$2
  default_backend next
backend next
  server s1 127.0.0.1:$3
EOF
}
haproxy_conf "$WORK/haproxy-a.cfg" $HAPROXY_A $HAPROXY_B
haproxy_conf "$WORK/haproxy-b.cfg" $HAPROXY_B $UPSTREAM
start haproxy-a haproxy -db -f "$WORK/haproxy-a.cfg"
start haproxy-b haproxy -db -f "$WORK/haproxy-b.cfg"

# --- weft --------------------------------------------------------------------------------
# Pair: client -> weft outbound (client sidecar) -> weft inbound (server sidecar) -> upstream.
mkdir -p "$WORK/mesh-pair" "$WORK/mesh-single"
service_entry "$WORK/mesh-pair/mesh.yaml" $WEFT_IN ", version: v1"
service_entry "$WORK/mesh-single/mesh.yaml" $UPSTREAM ", version: v1"
weft_proxy() { # name, workload, config, app, inbound, outbound, admin
  start "$1" "$WEFT" proxy --threads 1 --workload "$2" --labels "app=$2,version=v1" \
    --config "$3" --app "127.0.0.1:$4" --inbound "127.0.0.1:$5" --outbound "127.0.0.1:$6" \
    --admin "127.0.0.1:$7" --sampling 0.01 --log warn
}
weft_proxy weft-a client "$WORK/mesh-pair" $UPSTREAM 18093 $WEFT_OUT $WEFT_ADMIN_A
weft_proxy weft-b upstream "$WORK/mesh-pair" $UPSTREAM $WEFT_IN $WEFT_B_OUT $WEFT_ADMIN_B
weft_proxy weft-single client "$WORK/mesh-single" $UPSTREAM $WEFT1_IN $WEFT1_OUT $WEFT1_ADMIN

for port in $UPSTREAM $NGINX_A $NGINX_B $HAPROXY_A $HAPROXY_B $WEFT_OUT $WEFT_IN $WEFT1_OUT; do
  wait_port $port
done
sleep 1

# Processes to account per target (nginx: master + worker).
pids_of() { # name -> pid and its children
  local pid; pid=$(cat "$WORK/$1.pid")
  echo "$pid $(pgrep -P "$pid" | tr '\n' ' ')"
}
cpu_ticks() { # pids -> utime+stime ticks
  local total=0
  for pid in $1; do
    if [ -r "/proc/$pid/stat" ]; then
      total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    fi
  done
  echo $total
}
rss_kb() { # pids -> summed VmRSS (kB)
  local total=0
  for pid in $1; do
    [ -r "/proc/$pid/status" ] && total=$((total + $(awk '/VmRSS/{print $2}' "/proc/$pid/status")))
  done
  echo $total
}
HZ=$(getconf CLK_TCK)

# target name | URL | processes (names of $WORK/*.pid) | Host header
TARGETS=(
  "direct|http://127.0.0.1:$UPSTREAM/|upstream|upstream"
  "weft (1 proxy)|http://127.0.0.1:$WEFT1_OUT/|weft-single|upstream"
  "haproxy (1 proxy)|http://127.0.0.1:$HAPROXY_B/|haproxy-b|upstream"
  "nginx (1 proxy)|http://127.0.0.1:$NGINX_B/|nginx-b|upstream"
  "weft pair|http://127.0.0.1:$WEFT_OUT/|weft-a weft-b|upstream"
  "haproxy pair|http://127.0.0.1:$HAPROXY_A/|haproxy-a haproxy-b|upstream"
  "nginx pair|http://127.0.0.1:$NGINX_A/|nginx-a nginx-b|upstream"
)

oha_to() { # file url host args...
  local out=$1 url=$2 host=$3; shift 3
  oha --no-tui --output-format json -H "Host: $host" "$@" "$url" >"$out" 2>/dev/null || \
    oha --no-tui -j -H "Host: $host" "$@" "$url" >"$out"
}
oha_run() { # url host args... -> JSON file path
  local out; out=$(mktemp "$WORK/oha.XXXX.json")
  oha_to "$out" "$@"
  echo "$out"
}
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for target in "${TARGETS[@]}"; do
  IFS='|' read -r name url procs host <<<"$target"
  load=$(cut -d' ' -f1 /proc/loadavg)
  pids=""
  for p in $procs; do pids="$pids $(pids_of "$p")"; done
  # Idle: the processes as started, before any traffic reached them.
  idle_rss=$(rss_kb "$pids")
  # Warm up connections.
  oha_run "$url" "$host" -z 2s -c 64 >/dev/null
  before=$(cpu_ticks "$pids")
  max=$(oha_run "$url" "$host" -z "$DURATION" -c 64)
  after=$(cpu_ticks "$pids")
  rps=$(json "$max" "round(d['summary']['requestsPerSec'])")
  total=$(json "$max" "sum(d['statusCodeDistribution'].values())")
  ok=$(json "$max" "d['statusCodeDistribution'].get('200', 0)")
  cpu=$(python3 -c "print(round(($after - $before) / $HZ / max($total, 1) * 10000, 3))")
  # Fixed rates, open loop; sample RSS during the 1k run.
  rate1="$WORK/rate1.json"
  oha_to "$rate1" "$url" "$host" -z "$DURATION" -c 64 -q 1000 --latency-correction &
  rate_pid=$!
  load_rss=0
  while kill -0 $rate_pid 2>/dev/null; do
    sleep 0.5
    r=$(rss_kb "$pids"); [ "$r" -gt "$load_rss" ] && load_rss=$r
  done
  wait $rate_pid
  rate5=$(oha_run "$url" "$host" -z "$DURATION" -c 64 -q 5000 --latency-correction)
  p() { json "$1" "round(d['latencyPercentiles']['$2'] * 1000, 3)"; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rps" "$ok/$total" "$cpu" \
    "$(p "$rate1" p50)" "$(p "$rate1" p99)" "$(p "$rate5" p50)" "$(p "$rate5" p99)" \
    "$((idle_rss / 1024))" "$((load_rss / 1024))" "$(echo $procs | wc -w)" "$load" >>"$RESULTS"
  echo "measured: $name" >&2
done

python3 - "$RESULTS" "$OUT" <<'EOF'
import sys, datetime, platform, subprocess
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {r[0]: r for r in rows}
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
out = []
out.append(f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on {platform.node()}: {cpu}, "
           f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, Linux {platform.release()}.\n")
out.append("| target | max rps (64 conn) | ok/total | proxy CPU s / 10k req | p50 @1k (ms) | p99 @1k (ms) | p50 @5k (ms) | p99 @5k (ms) | RSS idle (MB) | RSS @1k rps (MB) | load avg at start |")
out.append("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    out.append("| " + " | ".join(r[:10] + r[11:12]) + " |")
def f(name, i):
    try: return float(by[name][i])
    except Exception: return float("nan")
d50, d99 = f("direct", 5), f("direct", 7)
lines = ["", "Ratios in this run:"]
lines.append(f"- max rps, weft / haproxy (1 proxy): {f('weft (1 proxy)',1)/f('haproxy (1 proxy)',1):.2f}; weft / nginx: {f('weft (1 proxy)',1)/f('nginx (1 proxy)',1):.2f}")
for rate, i in (("1k", 5), ("5k", 7)):
    dd = f("direct", i)
    wa, ha, na = f("weft pair", i) - dd, f("haproxy pair", i) - dd, f("nginx pair", i) - dd
    lines.append(f"- added p99 @{rate} over direct: weft pair {wa:.3f} ms, haproxy pair {ha:.3f} ms, nginx pair {na:.3f} ms (weft / haproxy {wa/ha if ha else float('nan'):.2f})")
lines.append(f"- CPU per 10k requests, weft / haproxy (1 proxy): {f('weft (1 proxy)',3)/f('haproxy (1 proxy)',3):.2f}")
out.extend(lines)
text = "\n".join(out) + "\n"
open(sys.argv[2], "w").write(text)
print(text)
EOF
