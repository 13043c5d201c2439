package server

import (
	"context"
	"net"
	"time"
)

// A fleet edge's graceful stop hands its tunnels to the other edges before
// it lets go of them. Its agents got GOAWAY and open sessions on other
// edges; meanwhile the edge keeps accepting public requests and
// connections, serving each from its own session to the agent until an
// edge that holds a new session is known, and forwarding to that edge
// from then on. Once another edge holds a key, this edge drops its own
// hold in the store, so the other edges stop forwarding here, and the
// work in flight here is all that is left to drain.

// handOffHold is how long a handing-off edge keeps taking public traffic
// (forwarding it) after its health check turned 503, at the least: a load
// balancer that polls it about as often takes it out of rotation before
// its listeners close, so no client reaches a closing socket.
const handOffHold = time.Second

// handOff waits until every key this edge serves is held by another edge
// too, or until deadline or ctx, dropping this edge's hold on each key as
// soon as another edge holds it. It returns at once when every other edge
// is leaving too, or gone: there is no one to hand to.
func (f *edgeFleet) handOff(ctx context.Context, deadline time.Time) {
	start := time.Now()
	released := map[string]bool{}
	done := false
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		keys := f.s.reg.liveKeys()
		pending := 0
		for _, k := range keys {
			if released[k] {
				continue
			}
			if !f.peerServes(k) {
				pending++
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := f.store.Release(rctx, k)
			cancel()
			if err != nil {
				f.s.log.Warn("fleet: dropping this edge's hold on a handed-off tunnel failed; other edges may still forward to it while it drains", "key", k, "err", err)
			}
			released[k] = true
		}
		if pending == 0 && !done {
			done = true
			f.s.log.Info("fleet: every tunnel is served by another edge now", "tunnels", len(released), "took", time.Since(start).Round(time.Millisecond))
		}
		if done && (time.Since(start) >= handOffHold || time.Now().After(deadline)) {
			return
		}
		if !done && !f.othersStay() {
			f.s.log.Info("fleet: no other edge to hand tunnels to", "tunnels", pending)
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		if !done && time.Now().After(deadline) {
			f.s.log.Warn("fleet: some agents opened no session on another edge in time; their tunnels end with this edge", "tunnels", pending)
			return
		}
	}
}

// othersStay reports whether another edge is a member and not leaving
// too: one the agents can move to.
func (f *edgeFleet) othersStay() bool {
	for _, m := range f.store.Members() {
		if m.ID != f.store.ID() && !m.Leaving {
			return true
		}
	}
	return false
}

// peerServes reports whether another edge holds key: it has a session to
// the key's agent.
func (f *edgeFleet) peerServes(key string) bool {
	l, ok := f.store.Lookup(key)
	return ok && len(f.peersHolding(l)) > 0
}

// forwardDraining carries a public TCP connection that reached this
// draining edge to another edge that serves its port, and reports whether
// it did. Connections that came over a link are served here: they were
// forwarded once already.
func (s *Server) forwardDraining(ep *endpoint, c net.Conn) bool {
	if s.fleet == nil || !s.draining.Load() {
		return false
	}
	if _, ok := c.(*linkConn); ok || !s.fleet.peerServes(ep.key) {
		return false
	}
	s.fleet.forwardTCP(ep.key, c)
	return true
}

// liveKeys lists the keys this edge serves now.
func (r *registry) liveKeys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var keys []string
	for k, l := range r.leases {
		if l.ep != nil {
			keys = append(keys, k)
		}
	}
	return keys
}
