#!/usr/bin/env bash
# The mTLS benchmark (BENCHMARKS.md "## mTLS"): what mutual TLS between two sidecars costs.
# Every target is client -> A -> B -> upstream on this machine, in one run:
#   direct            client -> upstream (the baseline)
#   weft pair         weft outbound -> weft inbound, plaintext (--config, no certificates)
#   weft mTLS pair    the same over mutual TLS 1.3 with SPIFFE certificates from `weft control`
#                     (config from the control plane, PeerAuthentication STRICT)
#   haproxy pair      haproxy -> haproxy, plaintext
#   haproxy TLS pair  haproxy -> haproxy over mutual TLS 1.3 (certificates of the same CA,
#                     made with `weft ca issue`)
# The upstream is nginx answering a 2-byte body. Measures max rps at 64 connections (closed
# loop) and p50/p99 at a fixed 1,000 rps (open loop, oha -q with --latency-correction); the
# report gives the p99 each pair adds over direct and what TLS adds to each pair. Writes
# Markdown to $OUT (default bench/mtls/results.md) and prints it.
#
# Usage: bench/mtls/run.sh   (DURATION=10s by default)
# Needs nginx, haproxy and oha; installs what is missing (Debian packages, cargo install).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib.sh
. "$ROOT/bench/lib.sh"
DURATION=${DURATION:-10s}
OUT=${OUT:-$ROOT/bench/mtls/results.md}
WORK=$(mktemp -d /tmp/weft-mtls-bench.XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export PATH="$HOME/.cargo/bin:/usr/sbin:$PATH"
need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need haproxy; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light haproxy
fi
need oha || cargo install oha --locked

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}
(cd "$ROOT" && cargo build --release --bin weft)
WEFT="$CARGO_TARGET_DIR/release/weft"

UPSTREAM=18600
WEFT_A_OUT=18601; WEFT_A_IN=18602; WEFT_A_ADMIN=18603
WEFT_B_OUT=18604; WEFT_B_IN=18605; WEFT_B_ADMIN=18606
MTLS_A_OUT=18611; MTLS_A_IN=18612; MTLS_A_ADMIN=18613
MTLS_B_OUT=18614; MTLS_B_IN=18615; MTLS_B_ADMIN=18616
CONTROL=18620
HAPROXY_A=18631; HAPROXY_B=18632
HAPROXY_TLS_A=18641; HAPROXY_TLS_B=18642

start() { # name, command...
  local name=$1; shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
}

wait_port() {
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "port $1 never opened" >&2
  tail -n 20 "$WORK"/*.log >&2 || true
  exit 1
}

# --- upstream ----------------------------------------------------------------------------
cat >"$WORK/upstream.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/upstream.pid;
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
start upstream nginx -c "$WORK/upstream.conf" -e stderr

# --- certificates: one CA for weft and haproxy ---------------------------------------------
"$WEFT" ca init --dir "$WORK/ca" >/dev/null
for sa in haproxy-a haproxy-b; do
  "$WEFT" ca issue --dir "$WORK/ca" --namespace default --service-account "$sa" \
    --out "$WORK/certs-$sa" >/dev/null
  cat "$WORK/certs-$sa/cert-chain.pem" "$WORK/certs-$sa/key.pem" >"$WORK/$sa.pem"
done

# --- weft ----------------------------------------------------------------------------------
mesh() { # folder, endpoint port, extra YAML
  service_entry "$1/mesh.yaml" "$2" ", security.istio.io/tlsMode: istio" \
    "    serviceAccount: upstream" "$3"
}
mesh "$WORK/mesh-plain" $WEFT_B_IN ""
mesh "$WORK/mesh-mtls" $MTLS_B_IN "---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT"
printf 'token-client default client\ntoken-upstream default upstream\n' >"$WORK/tokens"
echo token-client >"$WORK/client.token"
echo token-upstream >"$WORK/upstream.token"

weft_proxy() { # name, workload, inbound, outbound, admin, source flags...
  local name=$1 workload=$2 in=$3 out=$4 admin=$5; shift 5
  start "$name" "$WEFT" proxy --workload "$workload" --labels "app=$workload" \
    --app "127.0.0.1:$UPSTREAM" --inbound "127.0.0.1:$in" --outbound "127.0.0.1:$out" \
    --admin "127.0.0.1:$admin" --sampling 0.01 --log warn "$@"
}
weft_proxy weft-a client $WEFT_A_IN $WEFT_A_OUT $WEFT_A_ADMIN --config "$WORK/mesh-plain"
weft_proxy weft-b upstream $WEFT_B_IN $WEFT_B_OUT $WEFT_B_ADMIN --config "$WORK/mesh-plain"

start control "$WEFT" control --ca-dir "$WORK/ca" --tokens "$WORK/tokens" \
  --config "$WORK/mesh-mtls" --listen "127.0.0.1:$CONTROL" --log warn
wait_port $CONTROL
CONTROL_FLAGS=(--control "https://127.0.0.1:$CONTROL" --ca-root "$WORK/ca/root-cert.pem")
weft_proxy mtls-a client $MTLS_A_IN $MTLS_A_OUT $MTLS_A_ADMIN "${CONTROL_FLAGS[@]}" \
  --token-file "$WORK/client.token"
weft_proxy mtls-b upstream $MTLS_B_IN $MTLS_B_OUT $MTLS_B_ADMIN "${CONTROL_FLAGS[@]}" \
  --token-file "$WORK/upstream.token"

# --- haproxy -------------------------------------------------------------------------------
haproxy_conf() { # file, bind line, server line
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
  $2
  default_backend next
backend next
  $3
EOF
}
CA="$WORK/ca/root-cert.pem"
haproxy_conf "$WORK/haproxy-a.cfg" "bind 127.0.0.1:$HAPROXY_A" "server s1 127.0.0.1:$HAPROXY_B"
haproxy_conf "$WORK/haproxy-b.cfg" "bind 127.0.0.1:$HAPROXY_B" "server s1 127.0.0.1:$UPSTREAM"
haproxy_conf "$WORK/haproxy-tls-a.cfg" "bind 127.0.0.1:$HAPROXY_TLS_A" \
  "server s1 127.0.0.1:$HAPROXY_TLS_B ssl verify required ca-file $CA crt $WORK/haproxy-a.pem ssl-min-ver TLSv1.3 alpn http/1.1"
haproxy_conf "$WORK/haproxy-tls-b.cfg" \
  "bind 127.0.0.1:$HAPROXY_TLS_B ssl crt $WORK/haproxy-b.pem ca-file $CA verify required ssl-min-ver TLSv1.3 alpn http/1.1" \
  "server s1 127.0.0.1:$UPSTREAM"
for h in haproxy-a haproxy-b haproxy-tls-a haproxy-tls-b; do
  start "$h" haproxy -db -f "$WORK/$h.cfg"
done

for port in $UPSTREAM $WEFT_A_OUT $WEFT_B_IN $MTLS_A_OUT $MTLS_B_IN $HAPROXY_A $HAPROXY_B \
  $HAPROXY_TLS_A $HAPROXY_TLS_B; do
  wait_port $port
done

# The pairs answer before measuring (the mTLS pair once its config is in force).
HOST=upstream.default.svc.cluster.local
for url in "http://127.0.0.1:$WEFT_A_OUT/" "http://127.0.0.1:$MTLS_A_OUT/" \
  "http://127.0.0.1:$HAPROXY_A/" "http://127.0.0.1:$HAPROXY_TLS_A/"; do
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" "$url")" = 200 ] && break
    sleep 0.1
  done
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" "$url")" = 200 ] || {
    echo "$url does not answer 200" >&2; tail -n 20 "$WORK"/*.log >&2; exit 1; }
done
# The mTLS pair really is mutual TLS: the server sidecar counts it so.
curl -s "http://127.0.0.1:$MTLS_B_ADMIN/metrics" \
  | grep -q 'connection_security_policy="mutual_tls"' || {
  echo "the mTLS pair did not use mutual TLS" >&2; exit 1; }

export LOAD_BEFORE
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
TARGETS=(
  "direct|http://127.0.0.1:$UPSTREAM/"
  "weft pair|http://127.0.0.1:$WEFT_A_OUT/"
  "weft mTLS pair|http://127.0.0.1:$MTLS_A_OUT/"
  "haproxy pair|http://127.0.0.1:$HAPROXY_A/"
  "haproxy TLS pair|http://127.0.0.1:$HAPROXY_TLS_A/"
)

oha_run() { # url args... -> JSON file path
  local out; out=$(mktemp "$WORK/oha.XXXX.json")
  oha --no-tui --output-format json -H "Host: $HOST" "$@" >"$out"
  echo "$out"
}
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for target in "${TARGETS[@]}"; do
  IFS='|' read -r name url <<<"$target"
  oha_run "$url" -z 2s -c 64 >/dev/null # warm-up: connections and handshakes
  max=$(oha_run "$url" -z "$DURATION" -c 64)
  rate=$(oha_run "$url" -z "$DURATION" -c 64 -q 1000 --latency-correction)
  p() { json "$1" "round(d['latencyPercentiles']['$2'] * 1000, 3)"; }
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" \
    "$(json "$max" "round(d['summary']['requestsPerSec'])")" \
    "$(json "$max" "f\"{d['statusCodeDistribution'].get('200', 0)}/{sum(d['statusCodeDistribution'].values())}\"")" \
    "$(p "$rate" p50)" "$(p "$rate" p99)" >>"$RESULTS"
  echo "measured: $name" >&2
done

python3 - "$RESULTS" "$OUT" <<'EOF'
import sys, datetime, platform, subprocess
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {r[0]: r for r in rows}
sh = lambda c: subprocess.run(["sh", "-c", c], capture_output=True, text=True).stdout.strip()
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
cores, oha = sh("nproc"), sh("oha --version")
load = __import__("os").environ.get("LOAD_BEFORE", "?")
out = [f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()}: "
       f"{cpu}, {cores} cores, Linux {platform.release()}, {oha}; load average before: {load}.\n",
       "| target | max rps (64 conn) | ok/total | p50 @1k rps (ms) | p99 @1k rps (ms) |",
       "|---|---|---|---|---|"]
out += ["| " + " | ".join(r) + " |" for r in rows]
f = lambda name, i: float(by[name][i])
direct = f("direct", 4)
out += ["", "In this run:"]
for pair in ("weft pair", "weft mTLS pair", "haproxy pair", "haproxy TLS pair"):
    out.append(f"- {pair}: p99 @1k rps adds {f(pair, 4) - direct:.3f} ms over direct")
for plain, tls in (("weft pair", "weft mTLS pair"), ("haproxy pair", "haproxy TLS pair")):
    out.append(f"- TLS on the {plain}: p99 @1k {f(tls, 4) - f(plain, 4):+.3f} ms, "
               f"max rps {f(tls, 1) / f(plain, 1) - 1:+.1%}")
text = "\n".join(out) + "\n"
open(sys.argv[2], "w").write(text)
print(text)
EOF
