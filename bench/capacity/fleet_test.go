package capacity

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/results/resultstest"
)

func fleetResults(withFleet bool) *results.Results {
	m := map[string]map[string]float64{
		results.MMemEdgeBase:         {plan.Sluice: 10240},
		results.MMemTunnel:           {plan.Sluice: 100},
		results.MemEdgePerConn(1000): {plan.Sluice: 10},
		results.MCPUEdge:             {plan.Sluice: 1000}, // 1073.7 MB/s per core
	}
	if withFleet {
		m[results.MFleetRPSRatio] = map[string]float64{plan.Sluice: 0.8}
		m[results.MFleetExtraP50] = map[string]float64{plan.Sluice: 120}
		m[results.MFleetRegs] = map[string]float64{plan.Sluice: 1000}
		m[results.MFleetEdgeIdle] = map[string]float64{plan.Sluice: 32768}
	}
	r := resultstest.Synthetic(m, plan.Sluice)
	r.Params.MemoryConns = []int{1000}
	return r
}

// A small load fits the smallest fleet that keeps three store replicas; a
// load five cores' worth needs more edges of two cores, more still when
// every request is forwarded.
func TestSizeFleet(t *testing.T) {
	r := fleetResults(true)
	small := FleetInput{Input: Input{Conns: 1000, Tunnels: 100, Mbps: 100}, Agents: 50, SessionsPerAgent: 2, EdgeCores: 2, EdgeRAMMB: 2048}
	fs, err := SizeFleet(r, small)
	if err != nil {
		t.Fatal(err)
	}
	if fs.Edges != 3 || fs.ForwardedShare < 0.33 || fs.ForwardedShare > 0.34 {
		t.Fatalf("small load: %d edges, %.2f forwarded; want 3 and 1/3", fs.Edges, fs.ForwardedShare)
	}
	if fs.ReRegisterSec != 0.1 {
		t.Fatalf("100 tunnels at 1,000/s re-register in %v s, want 0.1", fs.ReRegisterSec)
	}
	big := small
	big.Mbps = 8 * 1073.741824 * 5 // five busy cores on one edge
	fs, err = SizeFleet(r, big)
	if err != nil {
		t.Fatal(err)
	}
	// 5 cores x (1 + share/0.8) over 2-core edges: at 4 edges, share 1/2,
	// 8.1 cores > 8; at 5 edges, share 3/5, 8.75 cores <= 10.
	if fs.Edges != 5 {
		t.Fatalf("big load: %d edges, want 5", fs.Edges)
	}
	var out bytes.Buffer
	fs.Print(&out, big)
	for _, want := range []string{"edges: 5", results.MFleetRPSRatio, results.MFleetEdgeIdle, "120 µs"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("the plan does not say %q:\n%s", want, out.String())
		}
	}
}

func TestSizeFleetNeedsTheFleetScenario(t *testing.T) {
	_, err := SizeFleet(fleetResults(false), FleetInput{Input: Input{Mbps: 10}, EdgeCores: 2, EdgeRAMMB: 1024})
	if err == nil || !strings.Contains(err.Error(), "-scenarios fleet") {
		t.Fatalf("got %v, want an error naming the fleet scenario", err)
	}
}
