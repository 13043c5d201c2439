package server

import (
	"log/slog"
	"sync/atomic"
)

// udpDropReason says why the edge dropped a public datagram.
type udpDropReason int

const (
	dropFlowLimit  udpDropReason = iota // the tunnel has UDPMaxFlows flows already
	dropNoAgent                         // no member serves the port
	dropPolicy                          // the tunnel's policy refused the source
	dropByteBudget                      // the tunnel's queued bytes reached UDPQueueBytes
	dropFlowQueue                       // the flow's queue (UDPFlowQueue datagrams) is full
	numDropReasons
)

// String is the reason's metric label and log key.
func (r udpDropReason) String() string {
	return [...]string{"flow_limit", "no_agent", "policy", "byte_budget", "flow_queue"}[r]
}

// udpDrops counts one UDP endpoint's dropped datagrams by reason, and
// remembers what was last logged so a summary reports only what is new.
type udpDrops struct {
	n      [numDropReasons]atomic.Uint64
	logged [numDropReasons]uint64 // touched only by the summary's goroutine
}

func (d *udpDrops) add(r udpDropReason) { d.n[r].Add(1) }

func (d *udpDrops) total() uint64 {
	var t uint64
	for i := range d.n {
		t += d.n[i].Load()
	}
	return t
}

// summarize logs one line with the drops since the last line, if any: a
// burst that overflows a bound is visible without a line per datagram.
func (d *udpDrops) summarize(log *slog.Logger, port int) {
	args := []any{"port", port}
	var fresh uint64
	for r := range numDropReasons {
		now := d.n[r].Load()
		if delta := now - d.logged[r]; delta > 0 {
			args = append(args, r.String(), delta)
			fresh += delta
		}
		d.logged[r] = now
	}
	if fresh == 0 {
		return
	}
	args = append(args, "dropped", fresh)
	log.Warn("UDP datagrams dropped at the edge's bounds (flow_limit: raise --udp-max-flows; flow_queue, byte_budget: the agent or local service is slower than the senders)", args...)
}
