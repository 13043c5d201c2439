package server

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// DefaultDrainTimeout bounds a graceful stop when Config.DrainTimeout is
// zero.
const DefaultDrainTimeout = 10 * time.Second

// drainPoll is how often a drain looks whether the work in flight ended,
// and closes the proxy's idle streams that would otherwise hold it.
const drainPoll = 50 * time.Millisecond

// drain is the edge's graceful stop, run once Serve's context ends. In
// order: the health check answers 503 (so a load balancer takes the edge
// out), no new agent, public connection or request is accepted, every
// agent is told with GOAWAY that its session is ending, and the requests
// and connections in flight run on until they finish or timeout passes.
// Agents' sessions stay up meanwhile: they carry that work. The caller
// closes the sessions afterwards. In a fleet, the agents are handed to
// other edges before the listeners close (fleet_handoff.go).
func (s *Server) drain(timeout time.Duration) {
	s.draining.Store(true)
	start := time.Now()
	dctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	s.ctrlLn.Close()
	if s.fleet != nil {
		// Agents move first, while this edge still takes public traffic:
		// it hands them to other edges (see handOff) with at most half
		// the drain, and drains what is left in flight with the rest.
		s.fleet.store.Leaving()
		s.sessions.Range(func(k, _ any) bool {
			k.(*agentConn).sess.GoAway()
			return true
		})
		s.fleet.handOff(dctx, start.Add(timeout/2))
	}
	s.closePublicListeners()

	// http.Server.Shutdown closes the listener and idle connections at once
	// and waits for the requests being served; upgraded (hijacked)
	// connections are streams, counted below.
	var shut sync.WaitGroup
	for _, srv := range s.publicServers() {
		shut.Add(1)
		go func() {
			defer shut.Done()
			if srv.Shutdown(dctx) != nil {
				srv.Close()
			}
		}()
	}
	httpDone := make(chan struct{})
	go func() {
		shut.Wait()
		close(httpDone)
	}()

	s.sessions.Range(func(k, _ any) bool {
		k.(*agentConn).sess.GoAway()
		return true
	})

	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		select {
		case <-dctx.Done():
			s.log.Warn("drain timeout: closing connections still in flight", "timeout", timeout, "streams", s.streamsInFlight())
			<-httpDone // Shutdown returns once dctx ends
			return
		case <-tick.C:
		}
		s.closeIdleProxyStreams()
		select {
		case <-httpDone:
		default:
			continue
		}
		if s.streamsInFlight() == 0 {
			s.log.Info("drained: every request and connection in flight finished", "took", time.Since(start).Round(time.Millisecond))
			return
		}
	}
}

// publicServers are the HTTP servers of the public ingress.
func (s *Server) publicServers() []*http.Server {
	var srvs []*http.Server
	if s.httpSrv != nil {
		srvs = append(srvs, s.httpSrv)
	}
	if s.https != nil {
		srvs = append(srvs, s.https.srv)
	}
	return srvs
}

// closePublicListeners stops every TCP tunnel's listener, so that no new
// public connection arrives, and ends UDP flows: a datagram in flight has
// no end to wait for.
func (s *Server) closePublicListeners() {
	s.reg.ports.Range(func(_, v any) bool {
		if ep := v.(*endpoint); ep.ln != nil {
			ep.ln.Close()
		}
		return true
	})
	s.reg.udp.Range(func(_, v any) bool {
		if ep := v.(*endpoint); ep.udp != nil {
			ep.udp.close()
		}
		return true
	})
}

// closeIdleProxyStreams closes the streams the HTTP proxy keeps open to
// agents between requests.
func (s *Server) closeIdleProxyStreams() {
	s.sessions.Range(func(k, _ any) bool {
		ac := k.(*agentConn)
		ac.mu.Lock()
		tunnels := ac.tunnels
		ac.mu.Unlock()
		for _, t := range tunnels {
			if t.tr != nil {
				t.tr.CloseIdleConnections()
			}
		}
		return true
	})
}

// streamsInFlight counts the streams open to agents besides their control
// streams: public connections and requests not finished yet, with the
// public TCP connections this edge relays to another edge of its fleet.
func (s *Server) streamsInFlight() int {
	n := 0
	if s.fleet != nil {
		n += int(s.fleet.tcpOut.Load())
	}
	s.sessions.Range(func(k, _ any) bool {
		n += max(0, k.(*agentConn).sess.NumStreams()-1)
		return true
	})
	return n
}
