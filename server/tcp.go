package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/relay"
)

// TCP tunnels: a public port per endpoint (chosen, asked for, or leased
// back), its accept loop, and one stream to a member agent per public
// connection.

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
