package server

import (
	"net"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/proxyproto"
)

// acceptProxy wraps a public listener so that it takes PROXY protocol
// headers from the configured load balancers and refuses them from anyone
// else. Without AcceptProxyProtocol it returns ln unchanged.
func (s *Server) acceptProxy(ln net.Listener) net.Listener {
	if len(s.cfg.AcceptProxyProtocol) == 0 {
		return ln
	}
	return &proxyproto.Listener{
		Listener:      ln,
		Trusted:       s.cfg.AcceptProxyProtocol,
		HeaderTimeout: s.cfg.ProxyHeaderTimeout,
		OnRefused: func(peer net.Addr, err error) {
			s.log.Warn("public connection refused: PROXY protocol", "peer", peer.String(), "err", err)
		},
	}
}

// resolveProxy reads a load balancer's PROXY header before the connection
// is routed, so the stream header names the real client. It reports false
// when the connection was refused (and is closed).
func (s *Server) resolveProxy(c net.Conn) bool {
	pc, ok := c.(*proxyproto.Conn)
	return !ok || pc.Resolve() == nil
}

// checkProxyProtocol accepts a Register's proxy_protocol for the kinds that
// can honour it.
func checkProxyProtocol(t *tunnel, r control.Register) *control.Error {
	switch r.ProxyProtocol {
	case "":
		return nil
	case "v1", "v2":
	default:
		return regError(r.Ref, control.CodeBadRequest, "PROXY protocol version %q: use v1 or v2", r.ProxyProtocol)
	}
	if r.Kind != control.KindTCP && r.Kind != control.KindHTTP {
		return regError(r.Ref, control.CodeBadRequest, "PROXY protocol is for tcp and http tunnels, not %s", r.Kind)
	}
	t.proxyProto = r.ProxyProtocol
	return nil
}
