package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/sluicehq/sluice/internal/h1"
	errpage "github.com/sluicehq/sluice/internal/page"
	"github.com/sluicehq/sluice/mux"
	"github.com/sluicehq/sluice/relay"
)

// HealthPath answers 200 "ok" on any host of the HTTP ingress; on the bare
// domain, /healthz does too. The /_sluice/ prefix is reserved for the edge.
const HealthPath = "/_sluice/healthz"

type tunnelKey struct{}

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

// initProxy builds the reverse proxy both ingresses share.
func (s *Server) initProxy() {
	if s.proxy != nil {
		return
	}
	s.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(tunnelKey{}).(*tunnel)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = t.host
			pr.Out.Host = pr.In.Host
			s.setForwarded(pr)
		},
		Transport:    tunnelRoundTripper{},
		BufferPool:   relay.BufferPool{},
		ErrorHandler: s.proxyError,
		ErrorLog:     slogErrorLog(s.log),
	}
}

// tunnelRoundTripper sends a proxied request through its tunnel's own
// transport (see newTunnelTransport).
type tunnelRoundTripper struct{}

func (tunnelRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	t, ok := req.Context().Value(tunnelKey{}).(*tunnel)
	if !ok {
		return nil, errTunnelGone
	}
	return t.tr.RoundTrip(req)
}

// newTunnelTransport returns the HTTP transport of one HTTP tunnel: its
// "connections" are streams to the tunnel's agent, kept alive and reused
// across requests. One transport per tunnel keeps its idle streams apart, so
// they can be closed when the tunnel goes away. Bodiless GETs and HEADs, the
// bulk of traffic, take h1.Pool's fast path; the rest net/http's Transport.
func newTunnelTransport(t *tunnel) *h1.Pool {
	dial := func(ctx context.Context, remote string) (net.Conn, error) {
		st, release, err := t.open(ctx, remote)
		if err != nil {
			return nil, err
		}
		var c net.Conn = st
		if t.ac.s.metering {
			c = newMeteredConn(st, t)
		}
		return &releasingConn{Conn: c, release: release}, nil
	}
	// The agent writes a PROXY header per stream, naming one client: a
	// stream reused for another client's request would misname it.
	single := t.proxyProto != ""
	maxIdle := 256
	if single {
		maxIdle = 0
	}
	return &h1.Pool{
		Dial:        func(ctx context.Context, req *http.Request) (net.Conn, error) { return dial(ctx, req.RemoteAddr) },
		MaxIdle:     maxIdle,
		IdleTimeout: 90 * time.Second,
		Fallback: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				remote, _ := ctx.Value(remoteKey{}).(string)
				return dial(ctx, remote)
			},
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true,
			ForceAttemptHTTP2:     false,
			DisableKeepAlives:     single,
		},
	}
}

type remoteKey struct{}

var errTunnelGone = errors.New("tunnel went offline")

// ServeHTTP routes a public request by its Host to a tunnel.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, ok := s.checkRequest(w, r)
	if !ok {
		return
	}
	if s.serveHealth(w, r, host) {
		return
	}
	ep, ok := s.reg.Host(host)
	var t *tunnel
	if ok {
		t = ep.pick()
	}
	if t == nil {
		if s.reg.Reserved(host) {
			page(w, http.StatusBadGateway, "Tunnel offline",
				fmt.Sprintf("The tunnel %s is offline: its agent disconnected. It comes back at this address when the agent reconnects.", host))
			return
		}
		page(w, http.StatusNotFound, "No tunnel here",
			fmt.Sprintf("No tunnel is registered for %s. Start one with: sluice http PORT --name NAME (it answers at NAME.%s).", host, s.cfg.Domain))
		return
	}
	if r.Method == http.MethodConnect {
		refuse(w, r, http.StatusMethodNotAllowed, "CONNECT refused",
			"This edge does not open raw tunnels with CONNECT: use a tcp tunnel (sluice tcp) for a raw connection.")
		return
	}
	if h1.Forwardable(r) {
		if s.metering {
			s.proxyCounted(w, r, t, func(w http.ResponseWriter, r *http.Request) { s.serveFast(w, r, t) })
			return
		}
		s.serveFast(w, r, t)
		return
	}
	if r.ProtoMajor == 1 && r.Body != http.NoBody {
		// Streaming RPCs read the request while the response is written.
		http.NewResponseController(w).EnableFullDuplex()
	}
	ctx := context.WithValue(r.Context(), tunnelKey{}, t)
	ctx = context.WithValue(ctx, remoteKey{}, r.RemoteAddr)
	if s.metering {
		s.proxyCounted(w, r.WithContext(ctx), t, s.proxy.ServeHTTP)
		return
	}
	s.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// serveHealth answers the health check, on any host at HealthPath and on
// the bare domain at /healthz.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request, host string) bool {
	if r.URL.Path != HealthPath && (host != s.cfg.Domain || r.URL.Path != "/healthz") {
		return false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
	return true
}

func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	t, _ := r.Context().Value(tunnelKey{}).(*tunnel)
	s.proxyErrorFor(w, r, t, err)
}

func (s *Server) proxyErrorFor(w http.ResponseWriter, r *http.Request, t *tunnel, err error) {
	host := r.Host
	if t != nil {
		host = t.host
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the public client went away; nobody reads this response
	}
	if errors.Is(err, errTunnelGone) || errors.Is(err, mux.ErrSessionClosed) || errors.Is(err, mux.ErrGoAway) {
		page(w, http.StatusBadGateway, "Tunnel offline",
			fmt.Sprintf("The tunnel %s is offline: its agent disconnected or is shutting down.", host))
		return
	}
	if t != nil {
		t.ac.log.Debug("proxying to the agent failed", "host", host, "err", err)
	}
	if errors.Is(err, mux.ErrStreamReset) {
		page(w, http.StatusBadGateway, "Local service unreachable",
			fmt.Sprintf("The tunnel %s is up, but its agent could not reach the local service (or the service dropped the connection).", host))
		return
	}
	page(w, http.StatusBadGateway, "Bad gateway",
		fmt.Sprintf("The agent of %s did not return a response (%v).", host, err))
}

// page writes the edge's own status pages.
func page(w http.ResponseWriter, code int, title, text string) {
	errpage.Write(w, code, title, text, "sluice edge")
}
