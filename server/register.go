package server

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/control"
)

func regError(ref uint32, code, format string, args ...any) *control.Error {
	return &control.Error{Ref: ref, Code: code, Message: fmt.Sprintf(format, args...)}
}

// claimError turns a registry refusal into the agent's error.
func claimError(ref uint32, code string, err error) *control.Error {
	var held *heldError
	var res *reservedError
	var se *storeError
	switch {
	case errors.As(err, &held) || errors.As(err, &res):
		return regError(ref, code, "%v", err)
	case errors.As(err, &se):
		return regError(ref, control.CodeInternal, "%v: the agent tries again", err)
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
	default:
		t.further = ac.furtherSession(r)
		if err = ac.reserve(r.Ref, t.further); err != nil {
			break
		}
		var c claimed
		var summary string
		err = checkProxyProtocol(t, r)
		if err == nil {
			summary, err = ac.compilePolicy(t, r)
		}
		if err == nil {
			switch r.Kind {
			case control.KindHTTP:
				c, err = ac.registerHTTP(t, r)
			case control.KindTCP:
				c, err = ac.registerPort(t, r, s.tcpPorts())
			case control.KindUDP:
				c, err = ac.registerPort(t, r, s.udpPorts())
			default:
				err = regError(r.Ref, control.CodeBadRequest, "unknown tunnel kind %q: use http, tcp or udp", r.Kind)
			}
		}
		if err != nil {
			s.uncount(t)
			break
		}
		for _, old := range c.replaced {
			old.ac.revoke(control.CodeTakenOver, fmt.Sprintf("%s was taken over by the agent at %s (same owner, asked to take it over)", t.url, ac.remote))
		}
		ac.mu.Lock()
		ac.tunnels = append(ac.tunnels, t)
		ac.mu.Unlock()
		s.consoleOnline(t, c.reused)
		ac.log.Info("tunnel online", "kind", t.kind, "url", t.url, "pooled", c.ep.isPooled(), "members", c.ep.size(), "reclaimed", c.reused)
		return control.Assigned{Ref: r.Ref, Tunnel: t.id, Kind: t.kind, Name: t.name, Hostname: t.host, Port: t.port, URL: t.url, Lease: c.secret, ProxyProtocol: t.proxyProto, Policy: summary}
	}
	ac.log.Info("tunnel refused", "kind", r.Kind, "name", r.Name, "hostname", r.Hostname, "port", r.RemotePort, "code", err.Code, "reason", err.Message)
	s.countRefusal(err.Code)
	s.consoleRefused(registrationKind(err.Code), registrationReason(err.Code), ac.remote)
	return err
}

// reserve counts the tunnel against its owner's limit, or says why not.
func (ac *agentConn) reserve(ref uint32, further bool) *control.Error {
	s := ac.s
	err := s.reserveTunnel(ac, further)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, errTunnelLimit):
		return regError(ref, control.CodeInternal, "%v", err)
	}
	max := ac.currentRule().maxTunnels
	if max == 0 {
		max = s.limits().TunnelsPerOwner
	}
	where := ""
	if s.fleet != nil {
		where = " on the edges of the fleet"
	}
	return regError(ref, control.CodeLimit, "owner %s already has %d tunnels open%s, its limit (%s): close some or ask the operator to raise max_tunnels", ac.currentRule().ownerName, max, where, ac.currentRule().label())
}

func (ac *agentConn) claimReq(t *tunnel, r control.Register, key string, random bool) claimReq {
	rule := ac.currentRule()
	maxLeases := rule.maxLeases
	if maxLeases == 0 {
		maxLeases = ac.s.limits().LeasesPerOwner
	}
	return claimReq{key: key, kind: r.Kind, name: t.name, owner: ac.owner, ownerName: rule.ownerName, remote: ac.remote,
		secret: r.Lease, random: random, pool: r.Pool, takeover: r.Takeover, maxLeases: maxLeases, t: t}
}

func (ac *agentConn) registerHTTP(t *tunnel, r control.Register) (claimed, *control.Error) {
	s := ac.s
	if s.httpLn == nil && s.https == nil {
		return claimed{}, regError(r.Ref, control.CodeBadRequest, "this edge serves no HTTP tunnels (it has no HTTP ingress): use a tcp tunnel or ask the operator")
	}
	label := ""
	if r.Hostname != "" {
		if !validHostname(r.Hostname) {
			return claimed{}, regError(r.Ref, control.CodeBadRequest, "hostname %q is not a valid DNS name", r.Hostname)
		}
		t.host = strings.ToLower(r.Hostname)
		if t.name == "" {
			t.name = t.host
		}
		if t.host == s.cfg.Domain {
			return claimed{}, regError(r.Ref, control.CodeBadRequest, "hostname %q is the edge's own domain, which serves its health check: pick a name under it", r.Hostname)
		}
	} else if t.name != "" && !validName(t.name) {
		return claimed{}, regError(r.Ref, control.CodeBadRequest, "name %q is not a valid DNS label: use 1-63 letters, digits and hyphens", t.name)
	}
	random := r.Name == "" && r.Hostname == ""
	t.tr = newTunnelTransport(t)
	for attempt := 0; ; attempt++ {
		if r.Hostname == "" {
			if random {
				t.name = randomName()
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
		var se *storeError
		if random && attempt < 20 && !errors.As(err, &se) {
			continue // a random name collided: draw another
		}
		return claimed{}, claimError(r.Ref, control.CodeNameTaken, err)
	}
}
