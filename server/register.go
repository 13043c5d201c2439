package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/mux"
	"github.com/sluicehq/sluice/relay"
)

func regError(ref uint32, code, format string, args ...any) *control.Error {
	return &control.Error{Ref: ref, Code: code, Message: fmt.Sprintf(format, args...)}
}

// claimError turns a registry refusal into the agent's error.
func claimError(ref uint32, code string, err error) *control.Error {
	var held *HeldError
	var res *ReservedError
	if errors.As(err, &held) || errors.As(err, &res) {
		return regError(ref, code, "%v", err)
	}
	return regError(ref, control.CodePortTaken, "%v", err)
}

// register claims the name or port asked for and makes the tunnel live.
func (ac *agentConn) register(r control.Register) control.Message {
	s := ac.s
	t := &tunnel{ac: ac, id: s.nextTunnel.Add(1), kind: r.Kind, name: r.Name}
	ac.mu.Lock()
	n, revoked := len(ac.tunnels), ac.revoked
	ac.mu.Unlock()
	lim := s.limits()
	var err *control.Error
	switch {
	case revoked:
		err = regError(r.Ref, control.CodeRevoked, "this session is closing")
	case n >= lim.TunnelsPerSession:
		err = regError(r.Ref, control.CodeLimit, "this session already has %d tunnels, the edge's limit per session: run another agent or ask the operator to raise it", n)
	case !s.reserveTunnel(ac):
		max := ac.currentRule().maxTunnels
		if max == 0 {
			max = lim.TunnelsPerOwner
		}
		err = regError(r.Ref, control.CodeLimit, "owner %s already has %d tunnels open, its limit (%s): close some or ask the operator to raise max_tunnels", ac.currentRule().ownerName, max, ac.currentRule().label())
	default:
		var c claimed
		err = checkProxyProtocol(t, r)
		if err == nil {
			switch r.Kind {
			case control.KindHTTP:
				c, err = ac.registerHTTP(t, r)
			case control.KindTCP:
				c, err = ac.registerTCP(t, r)
			case control.KindUDP:
				// UDP ports keep the edge's older rule: the same owner may
				// reclaim them, another may not.
				if err = ac.registerUDP(t, r); err == nil {
					c.ep = &endpoint{kind: control.KindUDP, port: t.port, url: t.url, members: []*tunnel{t}}
				}
			default:
				err = regError(r.Ref, control.CodeBadRequest, "unknown tunnel kind %q: use http, tcp or udp", r.Kind)
			}
		}
		if err != nil {
			s.countTunnel(ac.owner, -1)
			break
		}
		for _, old := range c.replaced {
			old.ac.revoke(control.CodeTakenOver, fmt.Sprintf("%s was taken over by the agent at %s (same owner, asked to take it over)", t.url, ac.remote))
		}
		ac.mu.Lock()
		ac.tunnels = append(ac.tunnels, t)
		ac.mu.Unlock()
		ac.log.Info("tunnel online", "kind", t.kind, "url", t.url, "pooled", c.ep.isPooled(), "members", c.ep.size(), "reclaimed", c.reused)
		return control.Assigned{Ref: r.Ref, Tunnel: t.id, Kind: t.kind, Name: t.name, Hostname: t.host, Port: t.port, URL: t.url, Lease: c.secret, ProxyProtocol: t.proxyProto}
	}
	ac.log.Info("tunnel refused", "kind", r.Kind, "name", r.Name, "hostname", r.Hostname, "port", r.RemotePort, "code", err.Code, "reason", err.Message)
	s.countRefusal(err.Code)
	return err
}

func (ac *agentConn) claimReq(t *tunnel, r control.Register, key string, random bool) claimReq {
	return claimReq{key: key, kind: r.Kind, name: t.name, owner: ac.owner, ownerName: ac.currentRule().ownerName, remote: ac.remote,
		secret: r.Lease, random: random, pool: r.Pool, takeover: r.Takeover, t: t}
}

func (ac *agentConn) registerHTTP(t *tunnel, r control.Register) (claimed, *control.Error) {
	s := ac.s
	if s.httpLn == nil && s.https == nil {
		return claimed{}, regError(r.Ref, control.CodeBadRequest, "this edge serves no HTTP tunnels (it has no HTTP ingress): use a tcp tunnel or ask the operator")
	}
	label := ""
	if r.Hostname != "" {
		if !ValidHostname(r.Hostname) {
			return claimed{}, regError(r.Ref, control.CodeBadRequest, "hostname %q is not a valid DNS name", r.Hostname)
		}
		t.host = strings.ToLower(r.Hostname)
		if t.name == "" {
			t.name = t.host
		}
		if t.host == s.cfg.Domain {
			return claimed{}, regError(r.Ref, control.CodeBadRequest, "hostname %q is the edge's own domain, which serves its health check: pick a name under it", r.Hostname)
		}
	} else if t.name != "" && !ValidName(t.name) {
		return claimed{}, regError(r.Ref, control.CodeBadRequest, "name %q is not a valid DNS label: use 1-63 letters, digits and hyphens", t.name)
	}
	random := r.Name == "" && r.Hostname == ""
	t.tr = newTunnelTransport(t)
	for attempt := 0; ; attempt++ {
		if r.Hostname == "" {
			if random {
				t.name = RandomName()
			}
			label = strings.ToLower(t.name)
			t.host = label + "." + s.cfg.Domain
		}
		if !random && !s.reg.leaseValid(hostKey(t.host), r.Lease, ac.owner) {
			if err := ac.currentRule().allowHost(t.host, label); err != nil {
				return claimed{}, regError(r.Ref, control.CodeForbidden, "%v", err)
			}
		}
		t.url = s.httpURL(t.host)
		q := ac.claimReq(t, r, hostKey(t.host), random)
		q.open = func() (*endpoint, error) {
			return &endpoint{kind: control.KindHTTP, key: q.key, host: t.host, name: t.name, url: t.url}, nil
		}
		c, err := s.reg.claim(q)
		if err == nil {
			t.ep = c.ep
			return c, nil
		}
		if random && attempt < 20 {
			continue // a random name collided: draw another
		}
		return claimed{}, claimError(r.Ref, control.CodeNameTaken, err)
	}
}

func (ac *agentConn) registerTCP(t *tunnel, r control.Register) (claimed, *control.Error) {
	s := ac.s
	lo, hi := s.cfg.TCPPortMin, s.cfg.TCPPortMax
	ranged := lo != 0 || hi != 0
	if r.RemotePort < 0 || r.RemotePort > 65535 {
		return claimed{}, regError(r.Ref, control.CodeBadRequest, "remote port %d is out of range 1-65535", r.RemotePort)
	}
	if r.RemotePort != 0 && ranged && (r.RemotePort < lo || r.RemotePort > hi) {
		return claimed{}, regError(r.Ref, control.CodePortTaken, "remote port %d is outside this edge's TCP port range %d-%d: pick one inside it or let the edge choose", r.RemotePort, lo, hi)
	}
	if r.RemotePort != 0 && !s.reg.leaseValid(portKey(r.RemotePort), r.Lease, ac.owner) {
		if err := ac.currentRule().allowPort(r.RemotePort); err != nil {
			return claimed{}, regError(r.Ref, control.CodeForbidden, "%v", err)
		}
	}
	if t.name == "" {
		t.name = "tcp"
	}
	var lastErr error
	for attempt := 0; attempt < 50; attempt++ {
		port := r.RemotePort
		if port == 0 && ranged {
			port = lo + randInt(hi-lo+1)
		} else if port == 0 && len(ac.currentRule().ports) > 0 {
			pr := ac.currentRule().ports[randInt(len(ac.currentRule().ports))]
			port = pr.lo + randInt(pr.hi-pr.lo+1)
		}
		if r.RemotePort == 0 && port != 0 && ac.currentRule().allowPort(port) != nil {
			continue
		}
		var ln net.Listener
		if port == 0 {
			// An ephemeral port: bind first to learn which, then claim it.
			var err error
			if ln, err = net.Listen("tcp", net.JoinHostPort(s.cfg.TCPHost, "0")); err != nil {
				lastErr = fmt.Errorf("edge cannot listen on a TCP port: %v", err)
				continue
			}
			port = ln.Addr().(*net.TCPAddr).Port
		}
		t.port = port
		t.url = "tcp://" + net.JoinHostPort(s.cfg.PublicHost, strconv.Itoa(port))
		q := ac.claimReq(t, r, portKey(port), r.RemotePort == 0)
		q.open = func() (*endpoint, error) {
			l := ln
			if l == nil {
				var err error
				if l, err = net.Listen("tcp", net.JoinHostPort(s.cfg.TCPHost, strconv.Itoa(port))); err != nil {
					return nil, fmt.Errorf("edge cannot listen on TCP port %d: %v: pick another port", port, err)
				}
			}
			ln = nil // the endpoint owns it now
			ep := &endpoint{kind: control.KindTCP, key: q.key, port: port, name: t.name, url: t.url, ln: s.acceptProxy(l)}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serveTCP(ep)
			}()
			return ep, nil
		}
		c, err := s.reg.claim(q)
		if ln != nil {
			ln.Close()
		}
		if err == nil {
			t.ep = c.ep
			return c, nil
		}
		lastErr = err
		if r.RemotePort != 0 {
			break
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no free TCP port was found")
	}
	return claimed{}, claimError(r.Ref, control.CodePortTaken, lastErr)
}

// serveTCP accepts public connections of a TCP endpoint until its listener
// closes, handing each to the next member.
func (s *Server) serveTCP(ep *endpoint) {
	for {
		c, err := ep.ln.Accept()
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
			s.handleTCP(ep, c)
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
	if !s.resolveProxy(c) {
		return
	}
	// A client that writes first (most protocols) has usually sent its
	// first bytes by now: they go out with the OPEN in one write, and the
	// agent finds them with the stream, instead of in a write of their own.
	bp := firstBufs.Get().(*[]byte)
	first, err := relay.ReadReady(c, (*bp)[:0])
	st, t, release := s.openTCP(ep, c, first, err)
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

// openTCP opens a stream for the public connection c with a member of ep,
// sending first with it; nil if no member took it (or reading failed: err).
// A member whose session died between pick and open is skipped: each
// member is tried once.
func (s *Server) openTCP(ep *endpoint, c net.Conn, first []byte, err error) (*mux.Stream, *tunnel, func()) {
	if err != nil {
		return nil, nil, nil
	}
	for range max(1, ep.size()) {
		t := ep.pick()
		if t == nil {
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
