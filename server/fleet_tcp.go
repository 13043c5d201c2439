package server

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/fleet"
	"github.com/sluicehq/sluice/relay"
)

// Every edge of a fleet listens on every TCP and UDP port leased in the
// fleet, so a load balancer or DNS round robin can send a connection or a
// datagram to any edge: the edges without a session to the port's agent
// accept it on a mirror of the port and forward it over a link to an edge
// that has one.

// mirror is a socket for a port another edge serves.
type mirror struct {
	close func()
	udp   *udpIngress // a UDP mirror's socket and flows
}

// syncPort opens or closes the mirror of a TCP or UDP port key after its
// lease changed: open while another edge holds the lease and this one
// serves no endpoint for it, closed otherwise.
func (f *edgeFleet) syncPort(key string) {
	kind, p, _ := strings.Cut(key, ":")
	port, err := strconv.Atoi(p)
	if err != nil || (kind != "port" && kind != "udp") {
		return
	}
	l, leased := f.store.Lookup(key)
	var local bool
	if kind == "udp" {
		_, local = f.s.reg.udpPort(port)
	} else {
		_, local = f.s.reg.port(port)
	}
	want := leased && !local && len(f.peersHolding(l)) > 0
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.mirrors[key]
	switch {
	case want && m == nil && !f.closing:
		addr := net.JoinHostPort(f.s.cfg.TCPHost, p)
		if kind == "udp" {
			m, err = f.mirrorUDP(key, port, addr)
		} else {
			m, err = f.mirrorTCP(key, addr)
		}
		if err != nil {
			f.s.log.Warn("fleet: cannot listen on a port another edge serves; traffic to it here is refused", "key", key, "err", err)
			return
		}
		f.mirrors[key] = m
	case !want && m != nil:
		m.close()
		delete(f.mirrors, key)
	}
}

// mirrorTCP listens on addr and forwards each connection to an edge that
// holds key.
func (f *edgeFleet) mirrorTCP(key, addr string) (*mirror, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	f.s.wg.Add(1)
	go func() {
		defer f.s.wg.Done()
		f.s.acceptEach(ln, func(c net.Conn) { f.forwardTCP(key, c) })
	}()
	return &mirror{close: func() { ln.Close() }}, nil
}

// unmirror closes the mirror of key before this edge binds the port itself.
func (f *edgeFleet) unmirror(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.mirrors[key]; m != nil {
		m.close()
		delete(f.mirrors, key)
	}
}

func (f *edgeFleet) closeMirrors() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing = true
	for k, m := range f.mirrors {
		m.close()
		delete(f.mirrors, k)
	}
}

// forwardTCP carries a public connection to an edge that holds key.
func (f *edgeFleet) forwardTCP(key string, c net.Conn) {
	l, ok := f.store.Lookup(key)
	if !ok {
		c.Close()
		return
	}
	h := fleet.Header{Kind: fleet.KindTCP, Key: key, RemoteAddr: c.RemoteAddr().String(), LocalAddr: c.LocalAddr().String()}
	for _, m := range f.peersHolding(l) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := f.links.Open(ctx, m.Link, h, nil)
		cancel()
		if err != nil {
			f.s.log.Debug("fleet: forwarding a TCP connection failed; trying the next edge", "key", key, "edge", m.ID, "err", err)
			continue
		}
		f.tcpOut.Add(1)
		relay.Relay(c, st, relay.Options{})
		f.tcpOut.Add(-1)
		return
	}
	c.Close()
}

// acceptTCP serves a TCP connection another edge forwarded here.
func (f *edgeFleet) acceptTCP(h fleet.Header) (func(net.Conn), error) {
	p, ok := strings.CutPrefix(h.Key, "port:")
	port, err := strconv.Atoi(p)
	if !ok || err != nil {
		return nil, errors.New(h.Key + " is not a TCP port key")
	}
	ep, ok := f.s.reg.port(port)
	if !ok || ep.size() == 0 {
		return nil, fleet.NoSessionError{Key: h.Key}
	}
	return func(c net.Conn) {
		f.s.handleTCP(ep, &linkConn{Conn: c, remote: h.RemoteAddr, local: h.LocalAddr})
	}, nil
}
