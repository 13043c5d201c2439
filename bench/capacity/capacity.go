// Package capacity sizes an edge (RAM, cores) for a load from a run's
// measured figures: the edge's base memory, its memory per tunnel and per
// connection, and its CPU per GiB moved.
package capacity

import (
	"fmt"
	"io"
	"math"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
)

// Input is the load an edge must carry.
type Input struct {
	Conns    int     // concurrent public connections
	Tunnels  int     // registered tunnels (agents x tunnels each)
	Mbps     float64 // aggregate traffic, megabits per second
	Headroom float64 // fraction added on top, e.g. 0.3
	System   string  // whose figures to use, normally sluice
}

// Sizing is the edge size and the figures it was computed from.
type Sizing struct {
	BaseKB, TunnelKB, ConnKB float64 // measured
	CPUmsPerGiB              float64 // edge CPU per GiB moved, measured
	MBpsPerCore              float64 // derived: edge throughput per busy core
	RAMMB                    float64 // needed, headroom included
	Cores                    float64 // needed, headroom included
	CoresRounded             int
	ConnMetric               string // which memory metric gave ConnKB
	TunnelMetric             string // which memory metric gave TunnelKB
	Source                   string // results file description
}

// Size sizes an edge from a results file's measured figures:
// RAM = edge base + tunnels x per-tunnel + connections x per-connection
// (edge process only); cores = traffic / edge throughput per CPU-second.
func Size(r *results.Results, in Input) (*Sizing, error) {
	if in.Conns < 0 || in.Tunnels < 0 || in.Mbps < 0 || in.Headroom < 0 {
		return nil, fmt.Errorf("connections, tunnels, Mbps and headroom must not be negative")
	}
	sys := in.System
	if sys == "" {
		sys = plan.Sluice
	}
	need := func(id, how string) (float64, error) {
		v, ok := r.Median(id, sys)
		if !ok {
			return 0, fmt.Errorf("the results have no %s figure for %s: %s", id, sys, how)
		}
		return v, nil
	}
	p := &Sizing{Source: fmt.Sprintf("%s run of %s on %d-core %s", r.Preset, r.Started.Format("2006-01-02 15:04 MST"), r.Machine.Cores, r.Machine.CPUModel)}
	var err error
	if p.BaseKB, err = need(results.MMemEdgeBase, "run the memory scenario"); err != nil {
		return nil, err
	}
	// Each further agent's cost is the figure that adds up over many
	// tunnels; the first agent's also carries the code pages it is the
	// first to run, and stands in only when the run has no other.
	p.TunnelMetric = results.MMemSession
	if v, ok := r.Median(results.MMemSession, sys); ok {
		p.TunnelKB = v
	} else if p.TunnelKB, err = need(results.MMemTunnel, "run the memory scenario"); err != nil {
		return nil, err
	} else {
		p.TunnelMetric = results.MMemTunnel
	}
	// The largest held-connection count is the figure least disturbed by
	// the runtime's fixed start-up allocations.
	for _, n := range r.Params.MemoryConns {
		if v, ok := r.Median(results.MemEdgePerConn(n), sys); ok {
			p.ConnKB, p.ConnMetric = v, results.MemEdgePerConn(n)
		}
	}
	if p.ConnMetric == "" {
		return nil, fmt.Errorf("the results have no edge memory per connection for %s: run the memory scenario", sys)
	}
	if p.CPUmsPerGiB, err = need(results.MCPUEdge, "run the throughput scenario"); err != nil {
		return nil, err
	}
	if p.CPUmsPerGiB <= 0 {
		return nil, fmt.Errorf("edge CPU per GiB is %g in the results: the transfer was too short to measure CPU (10 ms ticks); run with a larger -throughput-mib", p.CPUmsPerGiB)
	}
	// 1 GiB per CPUmsPerGiB milliseconds of one core.
	p.MBpsPerCore = float64(1<<30) / 1e6 / (p.CPUmsPerGiB / 1000)
	tunnel := math.Max(p.TunnelKB, 0)
	conn := math.Max(p.ConnKB, 0)
	f := 1 + in.Headroom
	p.RAMMB = (p.BaseKB + float64(in.Tunnels)*tunnel + float64(in.Conns)*conn) / 1024 * f
	p.Cores = in.Mbps / 8 / p.MBpsPerCore * f
	p.CoresRounded = int(math.Ceil(p.Cores))
	if p.CoresRounded < 1 {
		p.CoresRounded = 1
	}
	return p, nil
}

// Print writes the plan and the figures it used.
func (p *Sizing) Print(w io.Writer, in Input) {
	fmt.Fprintf(w, "Edge size for %d connections, %d tunnels, %g Mbit/s (%.0f%% headroom):\n", in.Conns, in.Tunnels, in.Mbps, 100*in.Headroom)
	fmt.Fprintf(w, "  RAM:   %.0f MB\n", math.Ceil(p.RAMMB))
	fmt.Fprintf(w, "  cores: %d (%.2f busy cores for the traffic)\n", p.CoresRounded, p.Cores)
	fmt.Fprintf(w, "Figures used (medians from the %s):\n", p.Source)
	fmt.Fprintf(w, "  edge base RSS                %8.0f KB   (%s)\n", p.BaseKB, results.MMemEdgeBase)
	fmt.Fprintf(w, "  per tunnel                   %8.1f KB   (%s)\n", p.TunnelKB, p.TunnelMetric)
	fmt.Fprintf(w, "  per connection (edge)        %8.2f KB   (%s)\n", p.ConnKB, p.ConnMetric)
	fmt.Fprintf(w, "  edge CPU per GiB moved       %8.0f ms   (%s)\n", p.CPUmsPerGiB, results.MCPUEdge)
	fmt.Fprintf(w, "  edge throughput per core     %8.0f MB/s (derived: 1 GiB / CPU per GiB)\n", p.MBpsPerCore)
	fmt.Fprintln(w, "RAM = base + tunnels x per-tunnel + connections x per-connection; cores = traffic / per-core throughput; both x (1 + headroom).")
	fmt.Fprintln(w, "The agent side is not included: it runs beside each service. Loopback figures exclude NIC and TLS costs.")
}
