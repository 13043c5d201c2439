package run

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/systems"
)

// tinyParams keeps end-to-end runs short: every scenario runs, on small
// sizes, so the scenario code itself is exercised.
func tinyParams(systems ...string) plan.Params {
	p, _ := plan.Preset("quick")
	p.Systems = systems
	p.Rounds = 1
	p.ThroughputMiB = 8
	p.ParallelConns = 3
	p.ParallelMiB = 2
	p.LatencyWarmup, p.LatencyRounds, p.LatencyMaxSec = 50, 300, 2
	p.LoadedWarmup, p.LoadedRounds, p.LoadedMaxSec = 20, 100, 1
	p.MemoryConns = []int{50}
	p.MemoryAgents = 3
	p.ConnRateSec = 0.3
	p.HTTPConns, p.HTTPWarmupSec, p.HTTPSec = 4, 0.1, 0.3
	p.StartupTimeoutSec = 10
	p.WANLinks = []plan.WANLink{{RTTms: 10, RateMBps: 100}}
	p.WANMiB, p.WANMaxSec = 2, 5
	p.WANParallelConns, p.WANParallelMiB = 3, 1
	p.WANLoadedRounds, p.WANLoadedMaxSec = 20, 0.5
	return p
}

func mustSystems(t *testing.T, names ...string) []systems.System {
	t.Helper()
	var out []systems.System
	for _, n := range names {
		s, err := systems.New(n, "")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestRunnerEndToEndDirect(t *testing.T) {
	var log bytes.Buffer
	r := &Runner{Params: tinyParams(plan.Direct), Systems: mustSystems(t, plan.Direct), Progress: NewProgress(&log)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	if res.Failures != 0 {
		t.Fatalf("direct run reported problems: %v\n%s", res.Notes, log.String())
	}
	for _, id := range []string{results.MUpload, results.MDownload, results.MParUpload, results.MParDownload, results.MLatP50, results.MLatP999, results.MLoadP999, results.MLoadBulk, results.MConnRate, results.MHTTPRPS, results.MHTTPP99} {
		v, ok := res.Median(id, plan.Direct)
		if !ok || v <= 0 {
			t.Errorf("direct %s = %v (present %v), want a positive figure", id, v, ok)
		}
	}
	if p50, _ := res.Median(results.MLatP50, plan.Direct); p50 > 0 {
		if p999, _ := res.Median(results.MLatP999, plan.Direct); p999 < p50 {
			t.Errorf("P99.9 %v below P50 %v", p999, p50)
		}
	}
	// Across the 10 ms, 100 MB/s link: no figure may beat the link.
	wan := plan.WANLink{RTTms: 10, RateMBps: 100}
	for _, fig := range []string{results.WANUpload, results.WANDownload, results.WANParallel} {
		v, ok := res.Median(results.WANMetric(wan, fig), plan.Direct)
		if !ok || v <= 0 || v > 130 {
			t.Errorf("direct across %s: %s = %v (present %v), want a rate above 0 and within the 100 MB/s cap", wan.Title(), fig, v, ok)
		}
	}
	if v, ok := res.Median(results.WANMetric(wan, results.WANFairness), plan.Direct); !ok || v < 1 {
		t.Errorf("direct across %s: fairness %v (present %v), want a factor of at least 1", wan.Title(), v, ok)
	}
	if v, ok := res.Median(results.WANMetric(wan, results.WANLoadP50), plan.Direct); !ok || v < 10000 {
		t.Errorf("direct across %s: loaded round trip P50 %v µs (present %v), want at least the link's 10 ms", wan.Title(), v, ok)
	}
	// Direct runs no process: no startup or memory figure may appear.
	if _, ok := res.Median(results.MStartup, plan.Direct); ok {
		t.Error("direct got a startup figure")
	}
	if _, ok := res.Median(results.MemPerConn(50), plan.Direct); ok {
		t.Error("direct got a memory figure")
	}
	if !strings.Contains(log.String(), "round 1/1 direct") {
		t.Errorf("progress output lacks the round lines:\n%s", log.String())
	}
	if strings.Contains(log.String(), "\033[") {
		t.Error("progress wrote terminal escapes to a non-terminal")
	}
}

func TestRunnerSkipsAbsentPeerWithInstallHint(t *testing.T) {
	t.Setenv("RATHOLE_BIN", "/nonexistent/rathole")
	t.Setenv("FRPS_BIN", "/nonexistent/frps")
	t.Setenv("FRPC_BIN", "/nonexistent/frpc")
	var log bytes.Buffer
	p := tinyParams(plan.Direct, plan.Rathole, plan.FRP)
	p.Scenarios = []string{plan.Latency}
	r := &Runner{Params: p, Systems: mustSystems(t, plan.Direct, plan.Rathole, plan.FRP), Progress: NewProgress(&log)}
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := log.String()
	for _, want := range []string{"skip rathole:", "cargo install rathole", "skip frp:", "github.com/fatedier/frp/releases"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got := res.SystemNames(); len(got) != 1 || got[0] != plan.Direct {
		t.Errorf("systems with figures = %v, want only direct", got)
	}
}

// The relay is a real separate-process tunnel stand-in: it proves the
// process handling (startup, RSS, CPU) that direct does not exercise.
func TestRunnerEndToEndRelay(t *testing.T) {
	var log bytes.Buffer
	p := tinyParams(plan.Direct, plan.Relay)
	p.Scenarios = []string{plan.Startup, plan.Throughput, plan.Memory}
	r := &Runner{Params: p, Systems: mustSystems(t, plan.Direct, plan.Relay), Progress: NewProgress(&log)}
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	if res.Failures != 0 {
		t.Fatalf("relay run reported problems: %v\n%s", res.Notes, log.String())
	}
	for _, id := range []string{results.MStartup, results.MUpload, results.MDownload, results.MCtxSw, results.MemPerConn(50), results.MMemIdle} {
		if v, ok := res.Median(id, plan.Relay); !ok || v <= 0 {
			t.Errorf("relay %s = %v (present %v), want a positive figure", id, v, ok)
		}
	}
	if v, _ := res.Median(results.MemSuccess(50), plan.Relay); v != 100 {
		t.Errorf("held %v%% of 50 connections through the relay, want 100%%", v)
	}
	if ratio := res.Metric(results.MUpload).Values[plan.Relay].RatioToDirect; ratio <= 0 {
		t.Errorf("relay upload has no ratio to direct")
	}
}
