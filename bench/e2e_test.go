package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// tinyParams keeps end-to-end runs short: every scenario runs, on small
// sizes, so the scenario code itself is exercised.
func tinyParams(systems ...string) Params {
	p, _ := PresetParams("quick")
	p.Systems = systems
	p.Rounds = 1
	p.ThroughputMiB = 8
	p.ParallelConns = 3
	p.ParallelMiB = 2
	p.LatencyWarmup, p.LatencyRounds, p.LatencyMaxSec = 50, 300, 2
	p.LoadedWarmup, p.LoadedRounds, p.LoadedMaxSec = 20, 100, 1
	p.MemoryConns = []int{50}
	p.ConnRateSec = 0.3
	p.HTTPConns, p.HTTPWarmupSec, p.HTTPSec = 4, 0.1, 0.3
	p.StartupTimeoutSec = 10
	return p
}

func mustSystems(t *testing.T, names ...string) []System {
	t.Helper()
	var out []System
	for _, n := range names {
		s, err := NewSystem(n, "")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestRunnerEndToEndDirect(t *testing.T) {
	var log bytes.Buffer
	r := &Runner{Params: tinyParams(SystemDirect), Systems: mustSystems(t, SystemDirect), Progress: NewProgress(&log)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	if res.Failures != 0 {
		t.Fatalf("direct run reported problems: %v\n%s", res.Notes, log.String())
	}
	for _, id := range []string{MUpload, MDownload, MParUpload, MParDownload, MLatP50, MLatP999, MLoadP999, MLoadBulk, MConnRate, MHTTPRPS, MHTTPP99} {
		v, ok := res.Median(id, SystemDirect)
		if !ok || v <= 0 {
			t.Errorf("direct %s = %v (present %v), want a positive figure", id, v, ok)
		}
	}
	if p50, _ := res.Median(MLatP50, SystemDirect); p50 > 0 {
		if p999, _ := res.Median(MLatP999, SystemDirect); p999 < p50 {
			t.Errorf("P99.9 %v below P50 %v", p999, p50)
		}
	}
	// Direct runs no process: no startup or memory figure may appear.
	if _, ok := res.Median(MStartup, SystemDirect); ok {
		t.Error("direct got a startup figure")
	}
	if _, ok := res.Median(MemPerConn(50), SystemDirect); ok {
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
	p := tinyParams(SystemDirect, SystemRathole, SystemFRP)
	p.Scenarios = []string{ScenLatency}
	r := &Runner{Params: p, Systems: mustSystems(t, SystemDirect, SystemRathole, SystemFRP), Progress: NewProgress(&log)}
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
	if got := res.SystemNames(); len(got) != 1 || got[0] != SystemDirect {
		t.Errorf("systems with figures = %v, want only direct", got)
	}
}

// The relay is a real separate-process tunnel stand-in: it proves the
// process handling (startup, RSS, CPU) that direct does not exercise.
func TestRunnerEndToEndRelay(t *testing.T) {
	var log bytes.Buffer
	p := tinyParams(SystemDirect, SystemRelay)
	p.Scenarios = []string{ScenStartup, ScenThroughput, ScenMemory}
	r := &Runner{Params: p, Systems: mustSystems(t, SystemDirect, SystemRelay), Progress: NewProgress(&log)}
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	if res.Failures != 0 {
		t.Fatalf("relay run reported problems: %v\n%s", res.Notes, log.String())
	}
	for _, id := range []string{MStartup, MUpload, MDownload, MCtxSw, MemPerConn(50), MMemIdle} {
		if v, ok := res.Median(id, SystemRelay); !ok || v <= 0 {
			t.Errorf("relay %s = %v (present %v), want a positive figure", id, v, ok)
		}
	}
	if v, _ := res.Median(MemSuccess(50), SystemRelay); v != 100 {
		t.Errorf("held %v%% of 50 connections through the relay, want 100%%", v)
	}
	if ratio := res.Metric(MUpload).Values[SystemRelay].RatioToDirect; ratio <= 0 {
		t.Errorf("relay upload has no ratio to direct")
	}
}
