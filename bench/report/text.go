package report

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/bench/link"
	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/target"
)

func scenarioTitle(s string) string {
	switch s {
	case plan.Startup:
		return "Startup"
	case plan.Throughput:
		return "Throughput, one connection"
	case plan.Parallel:
		return "Throughput, parallel connections"
	case plan.Latency:
		return "Latency, idle tunnel"
	case plan.Loaded:
		return "Latency under load"
	case plan.ConnRate:
		return "Connection rate"
	case plan.HTTP:
		return "HTTP"
	case plan.Memory:
		return "Memory"
	case plan.WAN:
		return "Across an emulated WAN"
	}
	return s
}

func scenarioBlurb(s string, p plan.Params) string {
	switch s {
	case plan.Startup:
		return "Time from starting the first process of the system to the first successful round trip through its tunnel (the agent is started once the server listens)."
	case plan.Throughput:
		return fmt.Sprintf("One connection moves %d MiB to the target (upload: timed until the target acknowledges the last byte) and %d MiB back (download). MB/s are 10^6 bytes per second. CPU per GiB is the user+system time of the system's own processes (from /proc) while both transfers ran, divided by the data moved; context switches per MiB count every thread of those processes (this virtual machine exposes no cycle counters, and the switches are what a multiplexer's goroutine hand-offs cost).", p.ThroughputMiB, p.ThroughputMiB)
	case plan.Parallel:
		return fmt.Sprintf("%d connections at once, %d MiB each, each direction; aggregate = all bytes over the wall time. For sluice and frp they all ride one tunnel session.", p.ParallelConns, p.ParallelMiB)
	case plan.Latency:
		return fmt.Sprintf("64-byte ping-pong on one connection: %d warm-up rounds, then %d measured into an HdrHistogram (1 µs to 60 s, 3 significant figures).", p.LatencyWarmup, p.LatencyRounds)
	case plan.Loaded:
		return fmt.Sprintf("The same ping-pong while %d bulk uploads saturate the same tunnel (for direct: the same loopback). The bulk rate reached meanwhile is shown too.", p.LoadedStreams)
	case plan.ConnRate:
		return fmt.Sprintf("New connections per second through the tunnel: connect, one 64-byte round trip, close; %d workers for %gs.", p.ConnRateWorkers, p.ConnRateSec)
	case plan.HTTP:
		return fmt.Sprintf("Small GETs (16-byte body) over %d keep-alive connections, routed by the Host header (`%s`) to the target's HTTP server; rathole has no HTTP routing (n/a). `sluice-policy` runs the same tunnel behind a traffic policy (`--basic-auth`, `--allow-cidr` and a `--policy` file with one CEL condition) and its clients send the credentials, so every request passes every rule. Edge CPU per request is the edge processes' CPU time (from /proc) over the run, warm-up included, divided by the requests answered in it.", p.HTTPConns, target.HTTPHostName)
	case plan.Memory:
		return "A fresh instance holds N connections open, each proven live by a round trip; the figure is the RSS of all the system's processes (read from /proc) minus their RSS when idle, divided by the connections held. Direct runs no process, so it has no figure. Edge figures count the server process only (they feed the capacity planner), and the tunnel figure is the edge's growth when one agent registers one tunnel."
	case plan.WAN:
		var links []string
		for _, l := range p.WANLinks {
			links = append(links, l.Title())
		}
		return fmt.Sprintf("A fresh instance per link, with the harness's userspace link (its own process) between agent and edge, where the internet is when the agent runs on a laptop and the edge on a public box; for direct, between the client and the target, so direct is the limit of the path itself. Links: %s. Each direction delays every byte by half the round trip; a rate cap is one bottleneck shared by every connection in that direction, with a %s queue in front of it (when full, the link stops reading and the sender's TCP feels back-pressure, as at a router; a deeper queue would add its length to every small message's round trip), and the link's sockets keep 64 KiB kernel buffers so no hidden queue grows in the kernel. One connection moves up to %d MiB each way (at most %gs; an upload counts what reached the target); %d connections download %d MiB each at once, and fairness is the worst connection's rate against their mean, as a factor (1: equal); small round trips are measured while two bulk uploads run, after a second for their windows to grow.",
			strings.Join(links, "; "), link.DefaultQueue, p.WANMiB, p.WANMaxSec, p.WANParallelConns, p.WANParallelMiB)
	}
	return ""
}

const methodText = `- **Same load, same target, same conditions.** One load generator and one target service (both in ` + "`bench/`" + `, Go) serve every system. The target runs as its own process; the tunnels run as separate OS processes exactly as users start them (` + "`sluice server` + `sluice tcp`/`sluice http`, `rathole -s/-c`, `frps`/`frpc`" + `), with configurations the harness writes. Logging is turned down alike: rathole with RUST_LOG=error, frp with log.level = "error", sluice with --log-level error and, on the HTTP agent, --log-requests=false. Everything is on loopback, TCP_NODELAY on every client socket, plain (unencrypted) transports, except ` + "`sluice-tls`" + `: sluice as users deploy it, TLS 1.3 between agent and edge with an ECDSA P-256 certificate the agent verifies (` + "`--tls-cert`/`--tls-key` on the edge, `--ca` on the agent" + `), so the cost of TLS is a figure of its own beside plain ` + "`sluice`" + `.
- **The same emulated WAN for every system.** The WAN scenario puts the harness's own link (a process of its own, not counted in any system's CPU or memory) where the internet would be: between agent and edge for the tunnels, between client and target for direct. The kernels here have no netem, and a userspace link needs no root.
- **Interleaved rounds.** Each round runs every system in turn (direct, sluice, rathole, frp; then again), so slow drift of a shared, noisy machine lands on all of them alike. Each figure is the median over rounds; the spread (min–max) is shown beside it, and every figure is also given as a ratio to direct, the physical limit of the machine.
- **Warm-up and histograms.** Latency rounds are preceded by warm-up rounds and recorded in HdrHistogram (1 µs–60 s, 3 significant figures); percentiles are per round, then the median over rounds is reported.
- **Fresh instances for memory.** Memory is measured on a freshly started instance per connection count, so buffers grown by the throughput scenarios do not count, and the open-file soft limit is raised to the hard limit first (a run that the limit caps says so in its notes).
- **Failures are reported, not hidden.** A scenario that fails is recorded in the run's notes with the tunnel's log, and the run goes on; an absent peer is skipped with one line saying how to install it.`

const runningText = "| command | what it does |\n|---|---|\n" +
	"| `make bench` | every scenario, every system present plus the relay yardstick, 3 rounds; writes bench/results.json, this file and bench/charts (10 min 22 s on 2 cores here, peers not installed) |\n" +
	"| `make bench-quick` | the same on smaller sizes and one WAN link (1 min 57 s here, peers not installed); writes bench/out/quick.json |\n" +
	"| `make bench-gate` | CI regression gate: direct, relay and sluice only, compares sluice/relay throughput and P99 round trip on loopback, sluice/direct throughput across a 50 ms, 100 MB/s link, and memory per connection with bench/baseline.json; fails naming the metric, the baseline and the measured value |\n" +
	"| `make bench-docker` | the runner in containers (docker-compose.bench.yml, docs/DOCKER.md); writes bench/out/docker.json and the Docker section below |\n" +
	"| `go run ./cmd/sluice-bench capacity -conns N -tunnels T -mbps X` | edge size (RAM, cores) from the measured figures in bench/results.json, printing the figures it used |\n" +
	"| `scripts/profile-sluice.sh [MiB]` | CPU and context switches per MiB and the hottest functions of sluice's edge and agent (perf) |\n" +
	"\n" +
	"Peers are found through `RATHOLE_BIN`, `FRPS_BIN`, `FRPC_BIN` or `PATH`; sluice through `SLUICE_BIN`, or it is built from the repository. " +
	"`go run ./cmd/sluice-bench run -h` lists every knob (systems, scenarios, rounds, sizes, `-wan` links); `relay` is the harness's own one-process Go relay, a yardstick for what a plain read/write copy costs on the machine (in `make bench`; add it to other runs with `-systems`). " +
	"`go run ./cmd/sluice-bench link -listen ADDR -to ADDR -shape delay=25ms,rate=100MB` runs the same link by hand, to put any tunnel across an emulated WAN."
