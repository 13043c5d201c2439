#!/usr/bin/env bash
# bench-mux.sh: compare sluice's mux with hashicorp/yamux and xtaci/smux.
#
# Runs the BenchmarkCompare* benchmarks of package mux (every
# implementation in the same `go test` run; COUNT rounds of one run each,
# so the implementations alternate), then
# prints benchstat's comparison (if benchstat can be fetched through the Go
# module proxy) and a table of medians, the ratios the mux's targets are
# stated in, and whether each target is met.
#
# Usage:
#   scripts/bench-mux.sh                 # run (COUNT=5) and summarize
#   scripts/bench-mux.sh -f results.txt  # summarize an earlier run's output
# Environment:
#   COUNT=5        runs per benchmark (medians need at least 5)
#   BENCH=.        benchmark regexp (within BenchmarkCompare*)
#   BENCHTIME=1s   passed to -benchtime
#   OUT=file       where the raw `go test` output is kept (default: a temp file)
#   NOBENCHSTAT=1  skip benchstat
set -euo pipefail
cd "$(dirname "$0")/.."

in=""
if [[ "${1:-}" == "-f" ]]; then
	in="${2:?-f needs the file with go test -bench output}"
	[[ -r "$in" ]] || { echo "bench-mux: cannot read $in; pass the output of an earlier run" >&2; exit 2; }
else
	COUNT="${COUNT:-5}"
	BENCHTIME="${BENCHTIME:-1s}"
	in="${OUT:-$(mktemp "${TMPDIR:-/tmp}/bench-mux.XXXXXX")}"
	# go test -count N runs each sub-benchmark N times in a row, so one
	# implementation's runs would all fall in one stretch of machine load.
	# Instead: N rounds of -count 1, each running sluice, yamux and smux
	# back to back, so the three share every swing in load.
	cmd=(go test -run '^$' -bench "BenchmarkCompare${BENCH:+.*${BENCH}}" -benchmem
		-count 1 -benchtime "$BENCHTIME" -timeout 60m ./mux/)
	echo "# $COUNT rounds of: ${cmd[*]}"
	echo "# raw output: $in"
	# What the figures belong to: the code, the toolchain and the machine.
	rev=$(git rev-parse --short HEAD 2>/dev/null || echo "not a git checkout")
	git diff --quiet HEAD -- mux frame 2>/dev/null || rev="$rev, with uncommitted changes in mux/ or frame/"
	echo "# commit: $rev"
	echo "# $(go version); GOMAXPROCS=${GOMAXPROCS:-$(nproc 2>/dev/null || echo '?')}"
	echo "# cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p') x $(nproc 2>/dev/null || echo '?'); kernel $(uname -r); load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
	: >"$in"
	for ((round = 1; round <= COUNT; round++)); do
		echo "# round $round of $COUNT, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
		if ! "${cmd[@]}" | tee -a "$in"; then
			echo "bench-mux: round $round of go test failed (see above); raw output in $in" >&2
			exit 1
		fi
	done
	echo
fi

if [[ -z "${NOBENCHSTAT:-}" ]]; then
	echo "## benchstat (columns by implementation; deltas are against sluice)"
	if ! go run golang.org/x/perf/cmd/benchstat@latest -col /impl "$in" 2>/dev/null; then
		echo "(benchstat could not run: the Go module proxy may be unreachable; the medians below do not need it)"
	fi
	echo
fi

# Medians and target ratios, computed here so the script needs nothing
# beyond Go, bash and a POSIX awk.
awk '
function median(key,    n, i, j, v, t, a) {
	n = cnt[key]
	if (n == 0) return ""
	for (i = 1; i <= n; i++) a[i] = val[key, i]
	for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j+1] = a[j]; a[j+1] = v }
	if (n % 2) return a[(n+1)/2]
	return (a[n/2] + a[n/2+1]) / 2
}
function fmtv(x) {
	if (x == "") return "-"
	if (x >= 100 || x == int(x)) return sprintf("%.0f", x)
	if (x >= 10) return sprintf("%.1f", x)
	return sprintf("%.2f", x)
}
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "" : a / b }
# paired: the median over counts of x_i / y_i, pairing the values of the
# same count (run back to back), which cancels slow swings in machine load.
function paired(bench, unit, x, y,    kx, ky, n, i, k, r) {
	kx = bench SUBSEP x SUBSEP unit; ky = bench SUBSEP y SUBSEP unit
	n = cnt[kx] < cnt[ky] ? cnt[kx] : cnt[ky]
	k = "paired" SUBSEP bench SUBSEP x SUBSEP y SUBSEP unit
	cnt[k] = 0
	for (i = 1; i <= n; i++) if (val[ky, i] != 0) val[k, ++cnt[k]] = val[kx, i] / val[ky, i]
	return median(k)
}
function fmtr(r) { return r == "" ? "-" : sprintf("%.2fx", r) }
/^BenchmarkCompare/ {
	name = $1
	sub(/-[0-9]+$/, "", name)          # GOMAXPROCS suffix
	split(name, parts, "/impl=")
	bench = parts[1]; sub(/^BenchmarkCompare/, "", bench)
	impl = parts[2]
	if (!(bench in seen)) { seen[bench] = 1; order[++nb] = bench }
	for (i = 3; i + 1 <= NF; i += 2) {
		unit = $(i+1)
		key = bench SUBSEP impl SUBSEP unit
		val[key, ++cnt[key]] = $i + 0
		if (!((bench, unit) in hasunit)) { hasunit[bench, unit] = 1; units[bench, ++nu[bench]] = unit }
		runs[bench, impl] = cnt[key]
	}
}
END {
	if (nb == 0) { print "bench-mux: no BenchmarkCompare lines in the input; did the run fail?" > "/dev/stderr"; exit 1 }
	print "## Medians"
	print ""
	print "| benchmark | metric | sluice | yamux | smux | sluice/yamux | sluice/smux | runs |"
	print "|---|---|---|---|---|---|---|---|"
	for (b = 1; b <= nb; b++) {
		bench = order[b]
		for (u = 1; u <= nu[bench]; u++) {
			unit = units[bench, u]
			s = median(bench SUBSEP "sluice" SUBSEP unit)
			y = median(bench SUBSEP "yamux" SUBSEP unit)
			m = median(bench SUBSEP "smux" SUBSEP unit)
			printf "| %s | %s | %s | %s | %s | %s | %s | %d |\n", bench, unit, fmtv(s), fmtv(y), fmtv(m), fmtr(ratio(s, y)), fmtr(ratio(s, m)), runs[bench, "sluice"]
		}
	}
	print ""
	print "## Targets (issue 2, section 7)"
	print ""
	print "Ratios of medians decide; the paired ratio (median over counts of the ratio within one count) is shown beside them because it is steadier on a loaded machine, and so is CPU time per op."
	print ""
	print "| target | measured | met |"
	print "|---|---|---|"
	r = ratio(median("Bulk" SUBSEP "sluice" SUBSEP "MB/s"), median("Bulk" SUBSEP "yamux" SUBSEP "MB/s"))
	target("(a) bulk MB/s >= 0.95x yamux", r, r != "" && r >= 0.95, sprintf("%s of yamux (paired %s; CPU per byte %s of yamux)", fmtr(r), fmtr(paired("Bulk", "MB/s", "sluice", "yamux")), fmtr(paired("Bulk", "cpu-µs/op", "sluice", "yamux"))))
	r = ratio(median("RoundTrips" SUBSEP "sluice" SUBSEP "rt/s"), median("RoundTrips" SUBSEP "yamux" SUBSEP "rt/s"))
	target("(b) 100-stream round trips/s >= 2x yamux", r, r != "" && r >= 2, sprintf("%s of yamux (paired %s; CPU per round trip %s of yamux)", fmtr(r), fmtr(paired("RoundTrips", "rt/s", "sluice", "yamux")), fmtr(paired("RoundTrips", "cpu-µs/op", "sluice", "yamux"))))
	r = ratio(median("RoundTrips" SUBSEP "sluice" SUBSEP "rt/s"), median("RoundTrips" SUBSEP "smux" SUBSEP "rt/s"))
	target("(b) 100-stream round trips/s >= 2x smux", r, r != "" && r >= 2, sprintf("%s of smux (paired %s; CPU per round trip %s of smux)", fmtr(r), fmtr(paired("RoundTrips", "rt/s", "sluice", "smux")), fmtr(paired("RoundTrips", "cpu-µs/op", "sluice", "smux"))))
	r = ratio(median("IdleMemory" SUBSEP "sluice" SUBSEP "B/stream"), median("IdleMemory" SUBSEP "yamux" SUBSEP "B/stream"))
	target("(c) bytes per idle stream <= 0.5x yamux", r, r != "" && r <= 0.5, sprintf("%s of yamux", fmtr(r)))
	s = median("Latency" SUBSEP "sluice" SUBSEP "p99.9-µs"); y = median("Latency" SUBSEP "yamux" SUBSEP "p99.9-µs")
	target("(d) P99.9 round trip <= yamux", s, s != "" && y != "" && s <= y, sprintf("%s µs vs %s µs (%s; paired %s)", fmtv(s), fmtv(y), fmtr(ratio(s, y)), fmtr(paired("Latency", "p99.9-µs", "sluice", "yamux"))))
	a = median("SteadyWriteRead" SUBSEP "sluice" SUBSEP "allocs/op")
	target("(e) 0 allocs per 64 KiB Write+Read (both ends)", a, a != "" && a == 0, sprintf("%s allocs/op", fmtv(a)))
	print ""
	printf "%d target(s) missed.\n", missed
}
function target(what, x, ok, text) {
	if (x == "") { printf "| %s | not measured | - |\n", what; missed++; return }
	printf "| %s | %s | %s |\n", what, text, ok ? "yes" : "**no**"
	if (!ok) missed++
}
' "$in"
