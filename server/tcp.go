package server

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/relay"
)

// TCP tunnels: a public port per endpoint (chosen, asked for, or leased
// back), its accept loop, and one stream to a member agent per public
// connection.

// tcpPorts says how TCP ports are bound and served: a listener per port,
// behind the PROXY protocol when load balancers are configured, and an
// accept loop that outlives the endpoint's members.
func (s *Server) tcpPorts() portKind {
	return portKind{
		kind: control.KindTCP, label: "TCP", lo: s.cfg.TCPPortMin, hi: s.cfg.TCPPortMax, key: portKey,
		bind: func(port int) (io.Closer, int, error) {
			if s.fleet != nil && port != 0 {
				// This edge serves the port now, not another edge for it.
				s.fleet.unmirror(portKey(port))
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.TCPHost, strconv.Itoa(port)))
			if err != nil {
				return nil, 0, err
			}
			return ln, ln.Addr().(*net.TCPAddr).Port, nil
		},
		serve: func(ep *endpoint, sock io.Closer) {
			ep.ln = s.acceptProxy(sock.(net.Listener))
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serveTCP(ep)
			}()
		},
	}
}

// serveTCP accepts public connections of a TCP endpoint until its listener
// closes, handing each to the next member.
func (s *Server) serveTCP(ep *endpoint) {
	s.acceptEach(ep.ln, func(c net.Conn) { s.handleTCP(ep, c) })
}

// acceptEach accepts connections until ln closes, serving each on a
// goroutine of its own; a temporary failure (out of descriptors) waits a
// moment rather than ending the listener.
func (s *Server) acceptEach(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			serve(c)
		}()
	}
}

func (s *Server) handleTCP(ep *endpoint, c net.Conn) {
	if !s.resolveProxy(c) {
		return
	}
	// A member whose session died between pick and open is skipped: try
	// each member once.
	for range max(1, ep.size()) {
		t := ep.pick()
		if t == nil {
			break
		}
		if err := s.admit(access{t: t, remote: addrPortOf(c.RemoteAddr())}); err != nil {
			t.ac.log.Debug("public TCP connection refused by policy", "port", ep.port, "err", err)
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, release, err := t.openFor(ctx, c.RemoteAddr().String(), c.LocalAddr().String())
		cancel()
		if err != nil {
			t.ac.log.Debug("public TCP connection: opening a stream to the agent failed", "port", ep.port, "err", err)
			continue
		}
		t.streams.Add(1)
		relay.Relay(c, st, relay.Options{Meter: s.meterOf(t)})
		t.streams.Add(-1)
		release()
		return
	}
	c.Close()
}
