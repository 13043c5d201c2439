package server

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/mux"
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

// firstBufs holds the buffers handleTCP reads a client's first bytes into.
var firstBufs = sync.Pool{New: func() any { b := make([]byte, 0, firstBytes); return &b }}

// firstBytes bounds what handleTCP sends with a stream's OPEN: a client's
// first segment (a request, a TLS ClientHello) is usually smaller; the rest
// waits in the socket for the relay.
const firstBytes = 4 << 10

func (s *Server) handleTCP(ep *endpoint, c net.Conn) {
	if !s.resolveProxy(c) || s.forwardDraining(ep, c) {
		return
	}
	// A client that writes first (most protocols) has usually sent its
	// first bytes by now: they go out with the OPEN in one write, and the
	// agent finds them with the stream, instead of in a write of their own.
	bp := firstBufs.Get().(*[]byte)
	first, err := relay.ReadReady(c, (*bp)[:0])
	var st *mux.Stream
	var t *tunnel
	var release func()
	if err == nil {
		st, t, release = s.openTCP(ep, c, first)
	}
	*bp = first[:0]
	firstBufs.Put(bp)
	if st == nil {
		c.Close()
		return
	}
	t.streams.Add(1)
	relay.Relay(c, st, relay.Options{Meter: s.meterOf(t)})
	t.streams.Add(-1)
	release()
}

// openTCP opens a stream for the public connection c with a member of ep
// that policy admits it to, sending first with it; nil if none took it. A
// member whose session died between pick and open is skipped: each member
// is tried once.
func (s *Server) openTCP(ep *endpoint, c net.Conn, first []byte) (*mux.Stream, *tunnel, func()) {
	for range max(1, ep.size()) {
		t := ep.pick()
		if t == nil {
			break
		}
		if _, ok := s.admit(access{t: t, remote: addrPortOf(c.RemoteAddr())}); !ok {
			t.ac.log.Debug("public TCP connection refused by policy", "port", ep.port, "client", c.RemoteAddr().String())
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, release, err := t.openFor(ctx, c.RemoteAddr().String(), c.LocalAddr().String(), first)
		cancel()
		if err != nil {
			t.ac.log.Debug("public TCP connection: opening a stream to the agent failed", "port", ep.port, "err", err)
			continue
		}
		return st, t, release
	}
	return nil, nil, nil
}
