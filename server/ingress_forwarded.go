package server

import (
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
)

// setForwarded writes the forwarding headers of a proxied request: who the
// client is (X-Forwarded-For, X-Real-IP, Forwarded's for=), which host it
// asked for (X-Forwarded-Host, host=) and over what (X-Forwarded-Proto,
// proto=). A peer in TrustedProxies is a proxy whose own headers are kept
// and extended by one hop; anyone else's are replaced, since a client can
// write whatever it likes in them. docs/HTTP.md lists what happens to each.
func (s *Server) setForwarded(pr *httputil.ProxyRequest) {
	f := s.forwardedFor(pr.In)
	h := pr.Out.Header
	h.Set("X-Forwarded-For", f.xff)
	h.Set("X-Forwarded-Host", f.host)
	h.Set("X-Forwarded-Proto", f.proto)
	h.Set("Forwarded", f.fwd)
	h.Set("X-Real-Ip", f.realIP)
}

// forwarded holds the values of the forwarding headers of one request.
type forwarded struct{ xff, host, proto, fwd, realIP string }

// forwardedHeaders are the headers forwarded sets: whatever the client sent
// under these names is replaced.
var forwardedHeaders = [...]string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Real-Ip"}

func (s *Server) forwardedFor(in *http.Request) forwarded {
	peer := remoteIP(in.RemoteAddr)
	peerStr := peer.String()
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	elem := forwardedElement(peer, in.Host, proto)
	if !s.trusted(peer) {
		return forwarded{xff: peerStr, host: in.Host, proto: proto, fwd: elem, realIP: peerStr}
	}
	f := forwarded{xff: peerStr, fwd: elem}
	chain := in.Header.Values("X-Forwarded-For")
	if len(chain) > 0 {
		f.xff = strings.Join(chain, ", ") + ", " + peerStr
	}
	f.host = firstOr(in.Header.Get("X-Forwarded-Host"), in.Host)
	f.proto = firstOr(in.Header.Get("X-Forwarded-Proto"), proto)
	if fwd := in.Header.Values("Forwarded"); len(fwd) > 0 {
		f.fwd = strings.Join(fwd, ", ") + ", " + elem
	}
	f.realIP = strings.TrimSpace(in.Header.Get("X-Real-Ip"))
	if _, err := netip.ParseAddr(f.realIP); err != nil {
		f.realIP = s.clientOf(chain, peer).String()
	}
	return f
}

func firstOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// clientOf walks X-Forwarded-For from the right, past every trusted proxy,
// to the first address no trusted proxy vouches for: the real client.
func (s *Server) clientOf(chain []string, peer netip.Addr) netip.Addr {
	client := peer
	for i := len(chain) - 1; i >= 0; i-- {
		hops := strings.Split(chain[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			if !s.trusted(client) {
				return client
			}
			ip, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil {
				return client // a malformed hop: stop at the last one we can name
			}
			client = ip.Unmap()
		}
	}
	return client
}

func remoteIP(addr string) netip.Addr {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.IPv4Unspecified()
	}
	return ap.Addr().Unmap()
}

// forwardedElement is one RFC 7239 forwarded-element for this hop.
func forwardedElement(peer netip.Addr, host, proto string) string {
	var b strings.Builder
	b.WriteString("for=")
	if peer.Is6() {
		b.WriteString(`"[` + peer.String() + `]"`)
	} else {
		b.WriteString(peer.String())
	}
	if host != "" {
		b.WriteString(";host=")
		b.WriteString(quoteIfNeeded(host))
	}
	b.WriteString(";proto=")
	b.WriteString(proto)
	return b.String()
}

// quoteIfNeeded writes v as an RFC 7230 token when it is one, else as a
// quoted-string.
func quoteIfNeeded(v string) string {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
		}
	}
	return v
}
