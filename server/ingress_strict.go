package server

import (
	"net"
	"net/http"
	"strconv"
	"strings"
)

// checkRequest applies the edge's parsing rules beyond what net/http
// enforces, answers a request that breaks them, and returns the routing host
// (lower case, without port or trailing dot) of one that passes.
func (s *Server) checkRequest(w http.ResponseWriter, r *http.Request) (host string, ok bool) {
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		// net/http reads such a body by Transfer-Encoding alone and drops a
		// Content-Length beside it, without saying the request had both.
		// That pair is the shape of request smuggling: whatever follows the
		// body is suspect, so the connection ends after this response
		// (RFC 9112 section 6.1 requires it for the pair; a chunked upload
		// paying one reconnect is the price of not being able to tell).
		w.Header().Set("Connection", "close")
	}
	host, err := routingHost(r.Host)
	if err != nil {
		refuse(w, r, http.StatusBadRequest, "Bad Host header", err.Error())
		return "", false
	}
	return host, true
}

// routingHost returns a Host header's host in lower case without a trailing
// dot. A port, when present, must be a number in 1-65535: anything else
// means the client (or a proxy before it) built the header wrongly.
func routingHost(hostport string) (string, error) {
	host := hostport
	if strings.IndexByte(hostport, ':') >= 0 && !strings.HasSuffix(hostport, "]") {
		h, p, err := net.SplitHostPort(hostport)
		if err != nil {
			return "", hostError(hostport, "it is not host or host:port")
		}
		if !validPort(p) {
			return "", hostError(hostport, "its port is not a number in 1-65535")
		}
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), "."), nil
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	n, _ := strconv.Atoi(p)
	return n >= 1 && n <= 65535
}

type hostErr string

func (e hostErr) Error() string { return string(e) }

func hostError(h, why string) error {
	return hostErr("The Host header " + strconv.Quote(h) + " is refused: " + why + ".")
}

// refuse answers a request the edge will not route and closes an HTTP/1
// connection after it, since what the client sends next is not to be trusted
// either.
func refuse(w http.ResponseWriter, r *http.Request, code int, title, text string) {
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	page(w, r, code, title, text)
}
