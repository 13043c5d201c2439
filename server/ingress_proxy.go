package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	errpage "github.com/sluicehq/sluice/internal/page"

	"github.com/sluicehq/sluice/internal/h1"
	"github.com/sluicehq/sluice/mux"
	"github.com/sluicehq/sluice/relay"
)

type tunnelKey struct{}

// forward proxies r to t: bodiless GETs and HEADs (h1.Forwardable) take the
// fast path, everything else httputil.ReverseProxy.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, t *tunnel) {
	if h1.Forwardable(r) {
		s.serveFast(w, r, t)
		return
	}
	if r.ProtoMajor == 1 && r.Body != http.NoBody {
		// Streaming RPCs read the request while the response is written.
		http.NewResponseController(w).EnableFullDuplex()
	}
	ctx := context.WithValue(r.Context(), tunnelKey{}, t)
	ctx = context.WithValue(ctx, remoteKey{}, r.RemoteAddr)
	s.proxy.ServeHTTP(w, r.WithContext(ctx))
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
		page(w, r, http.StatusBadGateway, "Tunnel offline",
			fmt.Sprintf("The tunnel %s is offline: its agent disconnected or is shutting down.", host))
		return
	}
	if t != nil {
		t.ac.log.Debug("proxying to the agent failed", "host", host, "err", err)
	}
	if errors.Is(err, mux.ErrStreamReset) {
		page(w, r, http.StatusBadGateway, "Local service unreachable",
			fmt.Sprintf("The tunnel %s is up, but its agent could not reach the local service (or the service dropped the connection).", host))
		return
	}
	page(w, r, http.StatusBadGateway, "Bad gateway",
		fmt.Sprintf("The agent of %s did not return a response (%v).", host, err))
}

// page writes the edge's own status pages; a gRPC client gets the same
// answer as a gRPC status it can read (see grpcStatus).
func page(w http.ResponseWriter, r *http.Request, code int, title, text string) {
	if isGRPC(r) {
		grpcStatus(w, code, title+": "+text)
		return
	}
	errpage.Write(w, code, title, text, "sluice edge")
}
