package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/sluicehq/sluice/control"
)

// Public ports, TCP and UDP alike: a port asked for, chosen from the edge's
// range or the owner's allowed ports, or an ephemeral one, claimed as a
// lease in the registry (one owner, pooled or taken over as names are) and
// bound when the claim opens its endpoint.

// portKind says how one transport's public ports are keyed, bound and
// served.
type portKind struct {
	kind   control.Kind
	label  string // "TCP" or "UDP", in messages
	lo, hi int    // the edge's range; both zero: any port
	key    func(port int) string
	// bind binds port (0: an ephemeral one) and returns the socket and the
	// port it got.
	bind func(port int) (io.Closer, int, error)
	// serve makes ep serve the bound socket; ep owns it from then on.
	serve func(ep *endpoint, sock io.Closer)
}

// registerPort claims a public port of kind p for t.
func (ac *agentConn) registerPort(t *tunnel, r control.Register, p portKind) (claimed, *control.Error) {
	s := ac.s
	ranged := p.lo != 0 || p.hi != 0
	if r.RemotePort < 0 || r.RemotePort > 65535 {
		return claimed{}, regError(r.Ref, control.CodeBadRequest, "remote port %d is out of range 1-65535", r.RemotePort)
	}
	if r.RemotePort != 0 && ranged && (r.RemotePort < p.lo || r.RemotePort > p.hi) {
		return claimed{}, regError(r.Ref, control.CodeBadRequest, "remote port %d is outside this edge's %s port range %d-%d: pick one inside it or let the edge choose", r.RemotePort, p.label, p.lo, p.hi)
	}
	if r.RemotePort != 0 && !s.reg.leaseValid(p.key(r.RemotePort), r.Lease, ac.owner) {
		if err := ac.currentRule().allowPort(r.RemotePort); err != nil {
			return claimed{}, regError(r.Ref, control.CodeForbidden, "%v", err)
		}
	}
	if t.name == "" {
		t.name = string(p.kind)
	}
	var lastErr error
	for attempt := 0; attempt < 50; attempt++ {
		port := r.RemotePort
		if port == 0 && ranged {
			port = p.lo + randInt(p.hi-p.lo+1)
		} else if port == 0 && len(ac.currentRule().ports) > 0 {
			pr := ac.currentRule().ports[randInt(len(ac.currentRule().ports))]
			port = pr.lo + randInt(pr.hi-pr.lo+1)
		}
		if r.RemotePort == 0 && port != 0 && ac.currentRule().allowPort(port) != nil {
			continue
		}
		var sock io.Closer
		if port == 0 {
			// An ephemeral port: bind first to learn which, then claim it.
			var err error
			if sock, port, err = p.bind(0); err != nil {
				lastErr = fmt.Errorf("edge cannot listen on a %s port: %v", p.label, err)
				continue
			}
		}
		t.port = port
		t.url = string(p.kind) + "://" + net.JoinHostPort(s.cfg.PublicHost, strconv.Itoa(port))
		q := ac.claimReq(t, r, p.key(port), r.RemotePort == 0)
		q.open = func() (*endpoint, error) {
			sk := sock
			if sk == nil {
				var err error
				if sk, _, err = p.bind(port); err != nil {
					return nil, fmt.Errorf("edge cannot listen on %s port %d: %v: pick another port", p.label, port, err)
				}
			}
			sock = nil // the endpoint owns it now
			ep := &endpoint{kind: p.kind, key: q.key, port: port, name: t.name, url: t.url}
			p.serve(ep, sk)
			return ep, nil
		}
		c, err := s.reg.claim(q)
		if sock != nil {
			sock.Close()
		}
		if err == nil {
			t.ep = c.ep
			return c, nil
		}
		lastErr = err
		var se *storeError
		if r.RemotePort != 0 || errors.As(err, &se) {
			break
		}
	}
	if s.fleet != nil && r.RemotePort != 0 {
		// A failed claim may have closed the mirror of a port another
		// edge serves: open it again.
		s.fleet.syncPort(p.key(r.RemotePort))
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no free %s port was found", p.label)
	}
	return claimed{}, claimError(r.Ref, control.CodePortTaken, lastErr)
}
