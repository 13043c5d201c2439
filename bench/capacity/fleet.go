package capacity

import (
	"fmt"
	"io"
	"math"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
)

// FleetInput is the load a fleet of edges must carry, and the size of one
// edge's machine.
type FleetInput struct {
	Input
	Agents int // agents, each with Tunnels/Agents tunnels
	// SessionsPerAgent is how many edges each agent keeps a session to;
	// a request landing on any other edge is forwarded.
	SessionsPerAgent int
	EdgeCores        float64
	EdgeRAMMB        float64
}

// FleetSizing is how many edges a fleet needs, and why.
type FleetSizing struct {
	Edge            *Sizing // the single-edge figures it starts from
	Edges           int
	ForwardedShare  float64 // of requests, landing on an edge without a session
	RPSRatio        float64 // measured: forwarded vs own-edge throughput
	ExtraP50us      float64 // measured: forwarded request's extra latency
	EdgeFleetBaseKB float64 // measured: an edge with its store node, idle
	RegsPerSec      float64 // measured: registrations across the fleet
	ReRegisterSec   float64 // every tunnel registering again (a restart of all agents)
}

// minFleet is the smallest fleet whose store keeps three replicas, so it
// survives the loss of one edge.
const minFleet = 3

// SizeFleet sizes a fleet from a run with the fleet scenario (and the
// memory and throughput ones, for the per-edge figures). Traffic is spread
// evenly over the edges by a load balancer; a forwarded request costs a
// second edge's pass, counted as the measured throughput ratio says.
func SizeFleet(r *results.Results, in FleetInput) (*FleetSizing, error) {
	if in.Agents < 0 || in.SessionsPerAgent < 0 || in.EdgeCores <= 0 || in.EdgeRAMMB <= 0 {
		return nil, fmt.Errorf("agents and sessions per agent must not be negative, and an edge's cores and RAM must be positive")
	}
	if in.SessionsPerAgent == 0 {
		in.SessionsPerAgent = 2
	}
	one, err := Size(r, Input{Conns: in.Conns, Tunnels: in.Tunnels, Mbps: in.Mbps, Headroom: 0, System: in.System})
	if err != nil {
		return nil, err
	}
	sys := in.System
	if sys == "" {
		sys = plan.Sluice
	}
	fs := &FleetSizing{Edge: one}
	var ok bool
	if fs.RPSRatio, ok = r.Median(results.MFleetRPSRatio, sys); !ok || fs.RPSRatio <= 0 {
		return nil, fmt.Errorf("the results have no %s figure for %s: run the fleet scenario (-scenarios fleet)", results.MFleetRPSRatio, sys)
	}
	fs.ExtraP50us, _ = r.Median(results.MFleetExtraP50, sys)
	fs.RegsPerSec, _ = r.Median(results.MFleetRegs, sys)
	fs.EdgeFleetBaseKB, ok = r.Median(results.MFleetEdgeIdle, sys)
	if !ok {
		fs.EdgeFleetBaseKB = one.BaseKB
	}
	if fs.RegsPerSec > 0 {
		fs.ReRegisterSec = float64(in.Tunnels) / fs.RegsPerSec
	}
	f := 1 + in.Headroom
	for e := minFleet; ; e++ {
		share := 1 - math.Min(float64(in.SessionsPerAgent), float64(e))/float64(e)
		// A forwarded request costs its own edge's pass plus what the
		// ratio says the forwarding adds.
		cost := 1 + share*(1/fs.RPSRatio)
		cores := one.Cores * cost * f / float64(e)
		held := math.Min(float64(in.SessionsPerAgent), float64(e)) / float64(e)
		ramMB := (fs.EdgeFleetBaseKB + float64(in.Tunnels)*held*math.Max(one.TunnelKB, 0) + float64(in.Conns)/float64(e)*cost*math.Max(one.ConnKB, 0)) / 1024 * f
		if cores <= in.EdgeCores && ramMB <= in.EdgeRAMMB {
			fs.Edges, fs.ForwardedShare = e, share
			return fs, nil
		}
		if e > 10000 {
			return nil, fmt.Errorf("no fleet of up to 10,000 edges of %g cores and %g MB carries this load", in.EdgeCores, in.EdgeRAMMB)
		}
	}
}

// Print writes the fleet plan and the figures it used.
func (fs *FleetSizing) Print(w io.Writer, in FleetInput) {
	fmt.Fprintf(w, "Fleet for %d agents, %d tunnels, %d connections, %g Mbit/s (%.0f%% headroom), edges of %g cores and %g MB, each agent on %d edges:\n",
		in.Agents, in.Tunnels, in.Conns, in.Mbps, 100*in.Headroom, in.EdgeCores, in.EdgeRAMMB, max(in.SessionsPerAgent, 2))
	fmt.Fprintf(w, "  edges: %d (at least %d, so the store keeps three replicas)\n", fs.Edges, minFleet)
	fmt.Fprintf(w, "  requests forwarded between edges: %.0f%%, each %.0f µs slower at P50\n", 100*fs.ForwardedShare, fs.ExtraP50us)
	if fs.ReRegisterSec > 0 {
		fmt.Fprintf(w, "  every tunnel registering again (all agents restarting): %.1f s at %.0f registrations/s\n", fs.ReRegisterSec, fs.RegsPerSec)
	}
	fmt.Fprintf(w, "Figures used (medians from the %s):\n", fs.Edge.Source)
	fmt.Fprintf(w, "  edge with its store node, idle %8.0f KB   (%s)\n", fs.EdgeFleetBaseKB, results.MFleetEdgeIdle)
	fmt.Fprintf(w, "  forwarded vs own-edge req/s    %8.2f x    (%s)\n", fs.RPSRatio, results.MFleetRPSRatio)
	fmt.Fprintf(w, "  per tunnel, per connection, CPU per GiB: as for one edge (%s, %s, %s)\n", fs.Edge.TunnelMetric, fs.Edge.ConnMetric, results.MCPUEdge)
	fmt.Fprintln(w, "Traffic is spread evenly over the edges; a request landing on an edge without a session to its agent is forwarded and costs a second edge's pass.")
}
