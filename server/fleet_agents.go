package server

import (
	"net"
	"os"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/fleet"
)

// Agents on several edges: an agent that says so in its Hello (Fleet) is
// told the fleet's edges, by their agent addresses, in Welcome and again
// whenever an edge joins or leaves, so that an agent given one edge's
// address keeps sessions to others and is not stranded when that edge
// goes. Each edge publishes its agent address with its membership.

// infoAgents is the membership field that holds an edge's agent address.
const infoAgents = "agents"

// agentAdvertise is the address agents reach this edge at: the agent
// listener's, with an unspecified host (0.0.0.0, ::) replaced by the host
// other edges reach this one at, which is the fleet's view of this machine.
func agentAdvertise(agents net.Addr, fleetListen string) string {
	host, port, err := net.SplitHostPort(agents.String())
	if err != nil {
		return agents.String()
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return agents.String()
	}
	fh, _, err := net.SplitHostPort(fleetListen)
	if ip := net.ParseIP(fh); err != nil || fh == "" || (ip != nil && ip.IsUnspecified()) {
		fh, _ = os.Hostname()
	}
	return net.JoinHostPort(fh, port)
}

// edges lists the fleet's edges an agent can connect to, this one first.
func (f *edgeFleet) edges() []control.Edge {
	self := f.store.ID()
	var out []control.Edge
	for _, m := range f.store.Members() {
		addr := m.Info[infoAgents]
		if addr == "" || (m.Leaving && m.ID != self) {
			continue // an edge whose agent address is unknown, or stopping
		}
		out = append(out, control.Edge{ID: m.ID, Addr: addr})
	}
	slices.SortFunc(out, func(a, b control.Edge) int {
		switch {
		case a.ID == self:
			return -1
		case b.ID == self:
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// welcome fills the fleet's part of an agent's Welcome.
func (s *Server) welcomeFleet(w *control.Welcome, asked bool) {
	if s.fleet == nil {
		return
	}
	w.Edge = s.fleet.store.ID()
	if asked {
		w.Fleet = s.fleet.edges()
	}
}

// tellAgentsFleet sends the fleet's edges to every agent that asked for
// them, after an edge joined or left.
func (f *edgeFleet) tellAgentsFleet(ev fleet.Event) {
	if f.s.draining.Load() {
		return // its agents are leaving; the list they have is the one to use
	}
	msg := control.Fleet{Edges: f.edges()}
	f.s.sessions.Range(func(k, _ any) bool {
		ac := k.(*agentConn)
		if !ac.fleetAware {
			return true
		}
		f.s.wg.Add(1)
		go func() {
			defer f.s.wg.Done()
			if err := ac.write(msg); err != nil {
				ac.log.Debug("telling the agent the fleet's edges failed", "err", err)
			}
		}()
		return true
	})
	f.s.log.Debug("fleet: told agents the fleet's edges", "edge", ev.Member.ID, "edges", len(msg.Edges))
}
