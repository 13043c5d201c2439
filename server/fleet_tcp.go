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

// Every edge of a fleet listens on every TCP port leased in the fleet, so a
// load balancer or DNS round robin can send a connection to any edge: the
// edges without a session to the port's agent accept it on a mirror
// listener and forward it over a link to an edge that has one.

// mirror is a listener for a port another edge serves.
type mirror struct {
	ln net.Listener
}

// syncPort opens or closes the mirror of a TCP port key after its lease
// changed: open while another edge holds the lease and this one serves no
// endpoint for it, closed otherwise.
func (f *edgeFleet) syncPort(key string) {
	p, ok := strings.CutPrefix(key, "port:")
	if !ok {
		return
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return
	}
	l, leased := f.store.Lookup(key)
	_, local := f.s.reg.port(port)
	want := leased && !local && len(f.peersHolding(l)) > 0
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.mirrors[key]
	switch {
	case want && m == nil && !f.closing:
		ln, err := net.Listen("tcp", net.JoinHostPort(f.s.cfg.TCPHost, p))
		if err != nil {
			f.s.log.Warn("fleet: cannot listen on a TCP port another edge serves; connections to it here are refused", "port", port, "err", err)
			return
		}
		m = &mirror{ln: ln}
		f.mirrors[key] = m
		f.s.wg.Add(1)
		go func() {
			defer f.s.wg.Done()
			f.serveMirror(key, ln)
		}()
	case !want && m != nil:
		m.ln.Close()
		delete(f.mirrors, key)
	}
}

// unmirror closes the mirror of key before this edge binds the port itself.
func (f *edgeFleet) unmirror(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.mirrors[key]; m != nil {
		m.ln.Close()
		delete(f.mirrors, key)
	}
}

func (f *edgeFleet) closeMirrors() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing = true
	for k, m := range f.mirrors {
		m.ln.Close()
		delete(f.mirrors, k)
	}
}

func (f *edgeFleet) serveMirror(key string, ln net.Listener) {
	f.s.acceptEach(ln, func(c net.Conn) { f.forwardTCP(key, c) })
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
		relay.Relay(c, st, relay.Options{})
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
