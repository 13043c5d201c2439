#!/usr/bin/env bash
# What the request inspector costs in HTTP requests per second: two
# `sluice dev` processes, one with --inspect=false and one with the inspector
# on, in front of the benchmark harness's HTTP target, loaded by two wrk
# processes at the same time so both see the same machine noise. Prints each
# round's requests per second and on/off ratio, then the median ratio.
#
#   scripts/inspector-cost.sh [ROUNDS] [SECONDS]   (defaults 7 and 5; needs wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
secs=${2:-5}
command -v wrk >/dev/null || { echo "inspector-cost: wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }
make -s build
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
target_http=127.0.0.1:$(free_port)
bin/sluice-bench target -tcp 127.0.0.1:0 -http "$target_http" >"$tmp/target.out" 2>&1 &
pids+=($!)
off_port=$(free_port)
on_port=$(free_port)
bin/sluice dev "$target_http" --name bench --http 127.0.0.1:$off_port --log-level error --inspect=false >"$tmp/off.out" 2>&1 &
pids+=($!)
bin/sluice dev "$target_http" --name bench --http 127.0.0.1:$on_port --log-level error --inspect 127.0.0.1:0 >"$tmp/on.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	grep -q Forwarding "$tmp/off.out" && grep -q Forwarding "$tmp/on.out" && break
	sleep 0.1
done
grep -q '^inspector: ' "$tmp/on.out" || { echo "inspector-cost: the inspector did not start" >&2; cat "$tmp/on.out" >&2; exit 1; }

ratios=()
for r in $(seq "$rounds"); do
	wrk -t1 -c8 -d"${secs}s" -H 'Host: bench.localhost' "http://127.0.0.1:$off_port/" >"$tmp/w-off" 2>&1 &
	w1=$!
	wrk -t1 -c8 -d"${secs}s" -H 'Host: bench.localhost' "http://127.0.0.1:$on_port/" >"$tmp/w-on" 2>&1 &
	w2=$!
	wait "$w1" "$w2"
	off=$(awk '/Requests\/sec/ {print $2}' "$tmp/w-off")
	on=$(awk '/Requests\/sec/ {print $2}' "$tmp/w-on")
	ratio=$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.3f", a / b }')
	ratios+=("$ratio")
	echo "round $r: inspector off $off req/s, on $on req/s, on/off $ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo "median on/off ratio over $rounds rounds: $median"
