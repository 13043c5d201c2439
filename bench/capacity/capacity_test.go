package capacity

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/results/resultstest"
)

func TestSize(t *testing.T) {
	r := resultstest.Synthetic(map[string]map[string]float64{
		results.MMemEdgeBase:          {plan.Sluice: 10240}, // 10 MiB
		results.MMemTunnel:            {plan.Sluice: 100},
		results.MemEdgePerConn(1000):  {plan.Sluice: 8},
		results.MemEdgePerConn(10000): {plan.Sluice: 5},
		results.MCPUEdge:              {plan.Sluice: 1000}, // 1 s of a core per GiB = 1073.7 MB/s per core
	}, plan.Sluice)
	r.Params.MemoryConns = []int{1000, 10000}
	in := Input{Conns: 100000, Tunnels: 1000, Mbps: 8 * 1073.741824 * 3, Headroom: 0.5}
	p, err := Size(r, in)
	if err != nil {
		t.Fatal(err)
	}
	if p.ConnMetric != results.MemEdgePerConn(10000) || p.ConnKB != 5 {
		t.Fatalf("plan must use the largest connection count: %s %v", p.ConnMetric, p.ConnKB)
	}
	wantRAM := (10240 + 1000*100 + 100000*5) / 1024.0 * 1.5
	if math.Abs(p.RAMMB-wantRAM) > 1e-6 {
		t.Fatalf("RAM = %v MB, want %v", p.RAMMB, wantRAM)
	}
	if math.Abs(p.Cores-4.5) > 1e-6 || p.CoresRounded != 5 {
		t.Fatalf("cores = %v (%d), want 4.5 (5)", p.Cores, p.CoresRounded)
	}
	var out bytes.Buffer
	p.Print(&out, in)
	for _, want := range []string{"RAM:", "cores: 5", results.MMemEdgeBase, results.MMemTunnel, results.MemEdgePerConn(10000), results.MCPUEdge} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("plan output lacks %q:\n%s", want, out.String())
		}
	}
}

// With the per-session figure measured, tunnels are sized by it and not by
// the first agent's growth, which carries code pages paid once.
func TestSizePrefersThePerSessionFigure(t *testing.T) {
	r := resultstest.Synthetic(map[string]map[string]float64{
		results.MMemEdgeBase:         {plan.Sluice: 10240},
		results.MMemTunnel:           {plan.Sluice: 400},
		results.MMemSession:          {plan.Sluice: 60},
		results.MemEdgePerConn(1000): {plan.Sluice: 8},
		results.MCPUEdge:             {plan.Sluice: 1000},
	}, plan.Sluice)
	r.Params.MemoryConns = []int{1000}
	p, err := Size(r, Input{Tunnels: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if p.TunnelKB != 60 || p.TunnelMetric != results.MMemSession {
		t.Fatalf("per tunnel %v KB from %s, want 60 from %s", p.TunnelKB, p.TunnelMetric, results.MMemSession)
	}
	if want := (10240 + 1000*60) / 1024.0; math.Abs(p.RAMMB-want) > 1e-6 {
		t.Fatalf("RAM = %v MB, want %v", p.RAMMB, want)
	}
}

func TestPlanCapacityNeedsFigures(t *testing.T) {
	r := resultstest.Synthetic(map[string]map[string]float64{results.MMemEdgeBase: {plan.Sluice: 1}}, plan.Sluice)
	_, err := Size(r, Input{Conns: 1, Tunnels: 1, Mbps: 1})
	if err == nil || !strings.Contains(err.Error(), results.MMemTunnel) {
		t.Fatalf("missing figures must be named, got %v", err)
	}
	if _, err := Size(r, Input{Conns: -1}); err == nil {
		t.Fatal("negative input accepted")
	}
}
