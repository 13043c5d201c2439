package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/internal/observe"

	"github.com/sluicehq/sluice/internal/page"

	"github.com/sluicehq/sluice/internal/h1"
	"github.com/sluicehq/sluice/relay"
)

// httpForwarder serves an HTTP tunnel on the agent: an http.Server reading
// requests from the tunnel's streams and a ReverseProxy to the local service.
// Parsing HTTP here (rather than piping bytes) is what lets the agent log the
// status of every request and answer with a clear page when the local service
// is down; keep-alive to the local service recovers most of the cost.
type httpForwarder struct {
	ts  *tunnelState
	ln  *chanListener
	srv *http.Server
	tr  interface {
		http.RoundTripper
		CloseIdleConnections()
	}
}

// fullDuplex lets a handler read the request body while it writes the
// response, which streaming RPCs do; net/http's HTTP/1 server otherwise
// stops the body at the first response write.
func fullDuplex(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != http.NoBody {
			http.NewResponseController(w).EnableFullDuplex()
		}
		if isGRPC(r) {
			r = withGRPCDeadline(r)
		}
		h.ServeHTTP(w, r)
	})
}

// The edge sets these; ReverseProxy's Rewrite mode strips them from the
// outbound request, so they are copied back as the edge wrote them.
var forwardedHeaders = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"}

func newHTTPForwarder(ts *tunnelState, logger *slog.Logger) *httpForwarder {
	f := &httpForwarder{ts: ts, ln: newChanListener()}
	h := ts.cfg.Handler
	if h == nil {
		f.tr = newUpstreamTransport(ts.cfg)
		local := ts.cfg.Local
		scheme := upstreamScheme(ts.cfg)
		proxyError := func(w http.ResponseWriter, r *http.Request, err error) {
			if isGRPC(r) {
				// A gRPC client reads a status, not a page.
				grpcError(w, r, local, err)
				return
			}
			if r.Context().Err() != nil {
				return // the public client went away
			}
			if ts.cfg.Fallback != nil && errors.Is(err, syscall.ECONNREFUSED) {
				ts.cfg.Fallback.ServeHTTP(w, r)
				return
			}
			if certRefused(err) {
				ts.down.log(logger, "local service's TLS certificate not trusted: answering 502; "+upstreamTLSFix, "local", local, "err", err)
				errorPage(w, http.StatusBadGateway, "Local service's certificate not trusted",
					fmt.Sprintf("The tunnel is up and the local service at %s answered, but the sluice agent could not verify its TLS certificate (%v). %s.", local, err, upstreamTLSFixSentence))
				return
			}
			ts.down.log(logger, "local service unreachable: answering 502; start it or fix the port", "local", local, "err", err)
			errorPage(w, http.StatusBadGateway, "Local service unreachable",
				fmt.Sprintf("The tunnel is up, but the sluice agent could not reach the local service at %s (%v). Start the service, or check the port given to sluice.", local, err))
		}
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL.Scheme = scheme
				pr.Out.URL.Host = local
				pr.Out.Host = hostHeader(ts.cfg, pr.In.Host)
				for _, k := range forwardedHeaders {
					if v, ok := pr.In.Header[k]; ok {
						pr.Out.Header[k] = v
					}
				}
			},
			ModifyResponse: func(r *http.Response) error {
				rewriteLocations(r, local, r.Request.Host)
				return nil
			},
			Transport:    f.tr,
			BufferPool:   relay.BufferPool{},
			ErrorHandler: proxyError,
			ErrorLog:     log.New(io.Discard, "", 0),
		}
		h = rp
		if pool, ok := f.tr.(*h1.Pool); ok {
			h = fastForwarder(ts.cfg, pool, rp, proxyError)
		}
	}
	if ts.cfg.LogRequests {
		h = logRequests(h, logger)
	}
	f.srv = &http.Server{
		Handler: fullDuplex(h),
		// The edge enforces header timeouts against public clients; streams
		// reaching here come from the edge's own proxy. Idle keep-alive
		// streams are closed by the edge's pool, not here, so a request
		// never races an agent-side idle close.
		ReadHeaderTimeout: time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	return f
}

func (f *httpForwarder) serve() { f.srv.Serve(f.ln) }

func (f *httpForwarder) close() {
	f.srv.Close()
	f.ln.Close()
	if f.tr != nil {
		f.tr.CloseIdleConnections()
	}
}

// logRequests logs one line per request: method and path as the message,
// then status and duration.
func logRequests(h http.Handler, l *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.Enabled(r.Context(), slog.LevelInfo) {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &observe.StatusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		status := rec.Status
		if status == 0 {
			status = http.StatusOK
		}
		// Typed attributes: no boxing of the two values per request.
		l.LogAttrs(r.Context(), slog.LevelInfo, r.Method+" "+r.URL.RequestURI(),
			slog.Int("status", status), slog.Duration("duration", time.Since(start).Round(time.Microsecond)))
	})
}

func errorPage(w http.ResponseWriter, code int, title, text string) {
	page.Write(w, code, title, text, "sluice agent")
}

// chanListener is a net.Listener fed by deliver: it hands tunnel streams to
// an http.Server.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c *publicConn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Reset()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return tunnelAddr("agent") }

// tunnelAddr is the net.Addr of a tunnel: its public URL.
type tunnelAddr string

func (a tunnelAddr) Network() string { return "sluice" }
func (a tunnelAddr) String() string  { return string(a) }

// fastForwarder sends h1.Forwardable requests (bodiless GETs and HEADs)
// through pool without httputil.ReverseProxy: the head is written straight
// from the request the edge sent, with the same Host and header rules, and
// the response copied back with its redirects rewritten. Everything else
// goes to rp.
func fastForwarder(t Tunnel, pool *h1.Pool, rp http.Handler, proxyError func(http.ResponseWriter, *http.Request, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h1.Forwardable(r) || isGRPC(r) {
			rp.ServeHTTP(w, r)
			return
		}
		host := hostHeader(t, r.Host)
		resp, err := pool.Do(r, func(bw *bufio.Writer) error { return h1.WriteHead(bw, r, host, nil, nil) })
		if err != nil {
			proxyError(w, r, err)
			return
		}
		rewriteLocations(resp, t.Local, host)
		if err := h1.CopyResponse(w, resp); err != nil {
			panic(http.ErrAbortHandler) // a cut-off body must not look complete
		}
	})
}
