package server

import (
	"net"
	"net/http"
	"net/netip"
)

// The policy hook: every public request and connection passes admit once,
// after the edge knows which tunnel it is for and before a stream to the
// tunnel's agent is opened. ServeHTTP (HTTP and HTTPS), handleTCP and a UDP
// flow's first datagram are its only callers, so a rule written here holds
// for every kind of public address.

// access is one public request or connection about to reach a tunnel.
type access struct {
	t *tunnel
	// remote is the public client's address for TCP and UDP, as the edge
	// sees it (after a load balancer's PROXY header).
	remote netip.AddrPort
	// r is the request, for HTTP tunnels; its RemoteAddr names the client.
	r *http.Request
}

// admit lets a through, or returns why it is refused: the HTTP ingress
// answers 403 with the reason, a TCP connection is closed and a UDP
// datagram dropped. Today every access is let through.
func (s *Server) admit(a access) error { return nil }

// addrPortOf is a connection's address as a netip.AddrPort (zero when it
// has none).
func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
