package server

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// HealthPath answers 200 "ok" on any host of the HTTP ingress; on the bare
// domain, /healthz does too. The /_sluice/ prefix is reserved for the edge.
const HealthPath = "/_sluice/healthz"

// reservedPrefix is the path prefix the edge keeps for itself on every host.
const reservedPrefix = "/_sluice/"

func reservedPath(p string) bool { return strings.HasPrefix(p, reservedPrefix) }

func (s *Server) initHTTP() {
	s.initProxy()
	s.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slogErrorLog(s.log),
		// HTTP/2 with prior knowledge (h2c) beside HTTP/1.1: gRPC clients
		// and curl --http2-prior-knowledge speak it on plain ports.
		Protocols: plainProtocols(),
		HTTP2:     publicHTTP2(),
	}
}

// publicH2Streams caps the concurrent streams of one public HTTP/2
// connection. net/http's default of 250 would make a gRPC client that holds
// more streams open (watchers, long polls) queue them behind each other.
const publicH2Streams = 1000

func publicHTTP2() *http.HTTP2Config {
	return &http.HTTP2Config{MaxConcurrentStreams: publicH2Streams}
}

func plainProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return p
}

// ServeHTTP is a public request's way through the edge, top to bottom:
// strict parsing of its Host, the health check, routing to a tunnel, the
// policy check, then the proxy. Metrics, when on, observe the response on
// the way; they do not take part in proxying it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, ok := s.front(w, r)
	if !ok {
		return
	}
	t := s.route(w, r, host)
	if t == nil {
		return
	}
	w, ok = s.admit(access{t: t, r: r, w: w})
	if !ok {
		return
	}
	if reservedPath(r.URL.Path) {
		// Whatever the edge did not answer above under its own prefix is
		// not the app's either: a link into it must not reach the app.
		page(w, r, http.StatusNotFound, "Reserved path",
			fmt.Sprintf("%s is reserved for the sluice edge and never forwarded to the app; the edge answers %s here.", r.URL.Path, HealthPath))
		return
	}
	if s.metering {
		o := startObservation(w)
		s.forward(&o.rec, r, t)
		s.observed(o, r, t)
		return
	}
	s.forward(w, r, t)
}

// front is what every public request meets first, on every ingress: strict
// parsing of its Host, then the health check. It returns the host to route
// by, or false when it answered the request itself.
func (s *Server) front(w http.ResponseWriter, r *http.Request) (host string, ok bool) {
	host, ok = s.checkRequest(w, r)
	if !ok || s.serveHealth(w, r, host) {
		return "", false
	}
	return host, true
}

// route returns the tunnel a request for host goes to, or answers the
// request itself (no tunnel, an offline one, CONNECT) and returns nil.
func (s *Server) route(w http.ResponseWriter, r *http.Request, host string) *tunnel {
	ep, ok := s.reg.host(host)
	var t *tunnel
	if ok {
		t = ep.pick()
	}
	if t != nil && s.draining.Load() && s.fleet != nil && s.fleet.peerServes(hostKey(host)) && s.fleet.serveHTTP(w, r, host) {
		return nil // handed off: another edge serves it now
	}
	if t == nil {
		if s.fleet != nil && s.fleet.serveHTTP(w, r, host) {
			return nil
		}
		if s.reg.isReserved(host) {
			page(w, r, http.StatusBadGateway, "Tunnel offline",
				fmt.Sprintf("The tunnel %s is offline: its agent disconnected. It comes back at this address when the agent reconnects.", host))
			return nil
		}
		page(w, r, http.StatusNotFound, "No tunnel here",
			fmt.Sprintf("No tunnel is registered for %s. Start one with: sluice http PORT --name NAME (it answers at NAME.%s).", host, s.cfg.Domain))
		return nil
	}
	if r.Method == http.MethodConnect {
		refuse(w, r, http.StatusMethodNotAllowed, "CONNECT refused",
			"This edge does not open raw tunnels with CONNECT: use a tcp tunnel (sluice tcp) for a raw connection.")
		return nil
	}
	return t
}

// serveHealth answers the health check, on any host at HealthPath and on
// the bare domain at /healthz.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request, host string) bool {
	if r.URL.Path != HealthPath && (host != s.cfg.Domain || r.URL.Path != "/healthz") {
		return false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() {
		// A load balancer stops sending here; requests that still arrive
		// are served until the drain ends.
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "draining")
		return true
	}
	fmt.Fprintln(w, "ok")
	return true
}
