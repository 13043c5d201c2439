package server

import (
	"context"
	"errors"
	"fmt"
	errpage "github.com/sluicehq/sluice/internal/page"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/sluicehq/sluice/mux"
	"github.com/sluicehq/sluice/relay"
)

// HealthPath answers 200 "ok" on any host of the HTTP ingress; on the bare
// domain, /healthz does too. The /_sluice/ prefix is reserved for the edge.
const HealthPath = "/_sluice/healthz"

type tunnelKey struct{}

func (s *Server) initHTTP() {
	s.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(tunnelKey{}).(*tunnel)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = t.host
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:    tunnelRoundTripper{},
		BufferPool:   relay.BufferPool{},
		ErrorHandler: s.proxyError,
		ErrorLog:     slogErrorLog(s.log),
	}
	s.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slogErrorLog(s.log),
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
// they can be closed when the tunnel goes away.
func newTunnelTransport(t *tunnel) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			remote, _ := ctx.Value(remoteKey{}).(string)
			return t.open(ctx, remote)
		},
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
}

type remoteKey struct{}

var errTunnelGone = errors.New("tunnel went offline")

// ServeHTTP routes a public request by its Host to a tunnel.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	if r.URL.Path == HealthPath || (host == s.cfg.Domain && r.URL.Path == "/healthz") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
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
	ctx := context.WithValue(r.Context(), tunnelKey{}, t)
	ctx = context.WithValue(ctx, remoteKey{}, r.RemoteAddr)
	s.proxy.ServeHTTP(w, r.WithContext(ctx))
}

func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	t, _ := r.Context().Value(tunnelKey{}).(*tunnel)
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
