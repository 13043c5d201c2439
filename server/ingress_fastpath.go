package server

import (
	"bufio"
	"net/http"

	"github.com/sluicehq/sluice/internal/h1"
)

// serveFast proxies an h1.Forwardable request without httputil.ReverseProxy:
// the request head is written straight from the public request onto a pooled
// stream and the response copied back, with the same header rules (hop-by-hop
// headers dropped both ways, forwarding headers set as forwarded.go says) and
// no clone of the request or its headers.
func (s *Server) serveFast(w http.ResponseWriter, r *http.Request, t *tunnel) {
	f := s.forwardedFor(r)
	extra := [...][2]string{{"X-Forwarded-For", f.xff}, {"X-Forwarded-Host", f.host}, {"X-Forwarded-Proto", f.proto}, {"Forwarded", f.fwd}, {"X-Real-Ip", f.realIP}}
	resp, err := t.tr.Do(r, func(bw *bufio.Writer) error { return h1.WriteHead(bw, r, r.Host, isForwarded, extra[:]) })
	if err != nil {
		s.proxyErrorFor(w, r, t, err)
		return
	}
	if err := h1.CopyResponse(w, resp); err != nil {
		panic(http.ErrAbortHandler) // a cut-off body must not look complete
	}
}

func isForwarded(k string) bool {
	for _, h := range forwardedHeaders {
		if k == h {
			return true
		}
	}
	return false
}
