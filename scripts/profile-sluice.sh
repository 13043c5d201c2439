#!/usr/bin/env bash
# Profiles sluice's edge and agent while one connection moves data through a
# TCP tunnel on loopback: CPU per GiB (perf stat task-clock; cycles and
# instructions too where the machine exposes hardware counters, which
# virtual machines often do not) and the hottest functions (perf record).
# Usage: scripts/profile-sluice.sh [MiB]   (default 1024; needs Debian's linux-perf)
# WAN=delay=25ms,rate=100MB puts the harness's link (sluice-bench link) between
# agent and edge, so the profile is of a tunnel across an emulated WAN.
# TLS=1 runs agent and edge with TLS 1.3 (an ECDSA P-256 certificate made
# with openssl, verified by the agent with --ca) instead of --insecure.
# SLUICE_BIN=path profiles that binary instead of one built from this tree.
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
command -v perf >/dev/null || { echo "profile-sluice: perf not found; install linux-perf (Debian) or linux-tools (Ubuntu)" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
if [ -n "${SLUICE_BIN:-}" ]; then cp "$SLUICE_BIN" "$tmp/sluice"; else go build -o "$tmp/sluice" ./cmd/sluice; fi
go build -o "$tmp/sluice-bench" ./cmd/sluice-bench
"$tmp/sluice-bench" target -tcp 127.0.0.1:25201 -http 127.0.0.1:23000 >"$tmp/target.log" 2>&1 & pids+=($!)
srv_tls=(--insecure)
ag_tls=(--insecure)
if [ -n "${TLS:-}" ]; then
  command -v openssl >/dev/null || { echo "profile-sluice: TLS=1 needs openssl to make the edge's certificate" >&2; exit 1; }
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$tmp/edge.key" -out "$tmp/edge.crt" 2>/dev/null
  srv_tls=(--tls-cert "$tmp/edge.crt" --tls-key "$tmp/edge.key")
  ag_tls=(--ca "$tmp/edge.crt" --server-name localhost)
fi
"$tmp/sluice" server --listen 127.0.0.1:27835 --http 127.0.0.1:28080 --domain localhost --token T "${srv_tls[@]}" --state-dir "$tmp/state" --log-level error >"$tmp/server.log" 2>&1 & srv=$!; pids+=($srv)
sleep 0.5
edge=127.0.0.1:27835
if [ -n "${WAN:-}" ]; then
  "$tmp/sluice-bench" link -listen 127.0.0.1:27836 -to 127.0.0.1:27835 -shape "$WAN" >"$tmp/link.log" 2>&1 & pids+=($!)
  edge=127.0.0.1:27836
  sleep 0.2
fi
"$tmp/sluice" tcp 127.0.0.1:25201 --server "$edge" --token T --remote-port 26002 "${ag_tls[@]}" --log-level error >"$tmp/agent.log" 2>&1 & ag=$!; pids+=($ag)
live=0
for _ in $(seq 100); do
  if "$tmp/sluice-bench" load -addr 127.0.0.1:26002 -mode upload -mib 1 >/dev/null 2>&1; then live=1; break; fi
  sleep 0.1
done
[ "$live" = 1 ] || { echo "profile-sluice: the tunnel never came up; logs:" >&2; cat "$tmp"/*.log >&2; exit 1; }
for mode in upload download; do
  echo "== $mode, $mib MiB, edge pid $srv + agent pid $ag"
  perf stat -x, -e task-clock,context-switches,cycles,instructions -p "$srv,$ag" -o "$tmp/stat-$mode" -- "$tmp/sluice-bench" load -addr 127.0.0.1:26002 -mode "$mode" -mib "$mib"
  awk -F, -v mib="$mib" '
    $3 ~ /task-clock/ { printf "  tunnel CPU: %.0f ms per GiB (edge + agent)\n", $1 / mib * 1024 }
    $3 ~ /context-switches/ { printf "  context switches: %.0f per MiB\n", $1 / mib }
    $3 ~ /^(cycles|instructions)/ && $1 ~ /^[0-9]/ { printf "  %s per MiB: %.2f M\n", $3, $1 / mib / 1e6 }
    $1 ~ /not supported/ { printf "  %s: not exposed on this machine\n", $3 }' "$tmp/stat-$mode"
  perf record -q -F 999 -p "$srv,$ag" -o "$tmp/perf-$mode.data" -- "$tmp/sluice-bench" load -addr 127.0.0.1:26002 -mode "$mode" -mib "$mib" >/dev/null
  echo "  hottest functions (self time, edge and agent together):"
  perf report -i "$tmp/perf-$mode.data" --sort comm,symbol --stdio 2>/dev/null | grep -v '^#' | grep '%' | head -25 | sed 's/^/  /' || true
done
