package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/fleet"
	"github.com/sluicehq/sluice/relay"
)

// UDP in a fleet. The mirror of a UDP port another edge serves is a public
// socket like the endpoint's own (udpIngress) whose flows go over links:
// each flow is one forwarded stream of the same length-prefixed datagrams
// a stream to the agent carries, so the edge with the session relays it to
// a stream of its agent unchanged. The tunnel's policy lives on the edges
// with a session to its agent; it decides on the client's own address,
// which the link's header carries, and a refusal comes back over the link,
// so the edge where the client landed drops that source's datagrams (and
// counts them) until its flow is idle.

// peerTarget sends the flows of a UDP port key to an edge that holds it.
type peerTarget struct {
	f   *edgeFleet
	key string
}

func (p peerTarget) openFlow(ctx context.Context, src netip.AddrPort, local string) (io.ReadWriteCloser, func(), error) {
	l, ok := p.f.store.Lookup(p.key)
	if !ok {
		return nil, nil, fmt.Errorf("no lease for %s in the fleet", p.key)
	}
	h := fleet.Header{Kind: fleet.KindUDP, Key: p.key, RemoteAddr: src.String(), LocalAddr: local}
	var last error = errors.New("no edge of the fleet serves it now")
	for _, m := range p.f.peersHolding(l) {
		st, err := p.f.links.Open(ctx, m.Link, h, nil)
		switch {
		case err == nil:
			return st, func() {}, nil
		case errors.Is(err, fleet.ErrRefused):
			return nil, nil, fmt.Errorf("%w: %v", errRefusedFlow, err)
		}
		last = err
	}
	return nil, nil, last
}

// count does nothing: the edge with the agent's session meters the flow.
func (p peerTarget) count(in, out int64) {}

func (p peerTarget) logger() *slog.Logger { return p.f.s.log }

// mirrorUDP binds addr and forwards each flow to an edge that holds key.
func (f *edgeFleet) mirrorUDP(key string, port int, addr string) (*mirror, error) {
	pc, err := listenUDP(addr)
	if err != nil {
		return nil, err
	}
	pc.SetReadBuffer(udpSocketBuffer)
	to := peerTarget{f: f, key: key}
	u := f.s.serveUDP(port, pc, func(netip.AddrPort) (udpTarget, udpDropReason) { return to, 0 })
	return &mirror{close: u.close, udp: u}, nil
}

// mirrorDrops calls each with the name, URL and ingress of every UDP
// mirror, for the drop counters.
func (f *edgeFleet) mirrorDrops(each func(name, url string, u *udpIngress)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for key, m := range f.mirrors {
		if m.udp == nil {
			continue
		}
		name := key
		if l, ok := f.store.Lookup(key); ok {
			if rec, err := fleetRecord(l); err == nil && rec.Name != "" {
				name = rec.Name
			}
		}
		each(name, "udp://"+net.JoinHostPort(f.s.cfg.PublicHost, strconv.Itoa(m.udp.port)), m.udp)
	}
}

// acceptUDP serves a UDP flow another edge forwarded here: it picks a
// member the tunnel's policy admits the client to, and relays the flow's
// datagrams to a stream of that member's agent.
func (f *edgeFleet) acceptUDP(h fleet.Header) (func(net.Conn), error) {
	p, ok := strings.CutPrefix(h.Key, "udp:")
	port, err := strconv.Atoi(p)
	if !ok || err != nil {
		return nil, errors.New(h.Key + " is not a UDP port key")
	}
	src, err := netip.ParseAddrPort(h.RemoteAddr)
	if err != nil {
		return nil, fmt.Errorf("the forwarded flow's client address %q is not an address and port", h.RemoteAddr)
	}
	ep, ok := f.s.reg.udpPort(port)
	if !ok || ep.udp == nil {
		return nil, fleet.NoSessionError{Key: h.Key}
	}
	t, why := f.s.pickMember(ep)(src)
	switch {
	case why == dropPolicy:
		return nil, errors.New("the tunnel's policy refused the client " + src.String())
	case t == nil:
		return nil, fleet.NoSessionError{Key: h.Key}
	}
	m := t.(*tunnel)
	return func(c net.Conn) {
		ctx, cancel := context.WithTimeout(ep.udp.ctx, udpStreamOpenTimeout)
		st, release, err := m.openFor(ctx, h.RemoteAddr, h.LocalAddr, nil)
		cancel()
		if err != nil {
			m.ac.log.Debug("forwarded UDP flow dropped: opening a stream to the agent failed", "port", port, "from", src, "err", err)
			c.Close()
			return
		}
		relay.Relay(c, st, relay.Options{Meter: f.s.meterOf(m)})
		release()
	}, nil
}
