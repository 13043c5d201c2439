package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/fleet"
	"github.com/sluicehq/sluice/internal/h1"
	"github.com/sluicehq/sluice/relay"
)

// HTTP through a forwarding edge. A request for a host this edge has no
// session for goes to an edge that has one, as HTTP/1.1 over kept-alive
// streams of the link to it: one pool of streams per peer edge, shared by
// every host and client, so a forwarded request costs no stream opening and
// no handshake, only its bytes. The client's address travels in a header
// that only edges may send (a link is authenticated; what a client sent
// under that name is dropped). The serving edge runs the request through its
// own ServeHTTP, so strict parsing, policy, metrics and the proxy to the
// agent are those of a request that reached it first.

const (
	// fleetClientHeader carries the public client's address over a link;
	// fleetProtoHeader says whether the client came over TLS.
	fleetClientHeader = "Sluice-Fleet-Client"
	fleetProtoHeader  = "Sluice-Fleet-Proto"
	// fleetRefusedHeader marks a serving edge's answer to a request for a
	// host it has no session for (its agent left since the forwarding edge
	// looked): the forwarding edge tries the next edge that holds it.
	fleetRefusedHeader = "Sluice-Fleet-Refused"
	// peerIdleStreams caps the idle streams kept per peer edge: enough
	// for the concurrency one edge forwards, few enough that an idle fleet
	// holds little.
	peerIdleStreams = 64
	// peerIdleTimeout is how long an unused stream is kept; the serving
	// side keeps its end longer, so it is never the one to close a stream
	// the forwarding edge is about to reuse.
	peerIdleTimeout   = 90 * time.Second
	servedIdleTimeout = 2 * time.Minute
)

// forwardedKey marks the context of a request that came over a link; its
// value is the link's *linkConn.
type forwardedKey struct{}

// serveLinkConn serves a forwarded HTTP stream as a public connection.
func (f *edgeFleet) serveLinkConn(lc *linkConn) func(net.Conn) {
	return func(c net.Conn) {
		lc.Conn = c
		if !f.in.push(lc) {
			c.Close()
		}
	}
}

// linkOf is the link a request came over, or nil for a public one.
func linkOf(r *http.Request) *linkConn {
	lc, _ := r.Context().Value(forwardedKey{}).(*linkConn)
	return lc
}

type peerPoolKey struct{}

var errNoSessionThere = errors.New("the edge that held the tunnel has no session to its agent any more")

// initHTTP builds the server of forwarded HTTP streams and the proxy of
// requests that cannot take the fast path.
func (f *edgeFleet) initHTTP() {
	c := f.s.cfg
	f.httpSrv = &http.Server{
		Handler:           http.HandlerFunc(f.serveForwarded),
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		IdleTimeout:       servedIdleTimeout,
		ErrorLog:          slogErrorLog(f.s.log),
		ConnContext: func(ctx context.Context, nc net.Conn) context.Context {
			lc, _ := nc.(*linkConn)
			return context.WithValue(ctx, forwardedKey{}, lc)
		},
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			// One name for every peer keeps one idle pool per transport.
			pr.Out.URL.Host = "edge"
			pr.Out.Host = pr.In.Host
			// The edge that serves the request sets the forwarding
			// headers, from the client address sent along; what a trusted
			// proxy in front sent goes along for it to extend.
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"} {
				if v, ok := pr.In.Header[h]; ok {
					pr.Out.Header[h] = v
				}
			}
			for _, kv := range fleetHeaders(pr.In) {
				pr.Out.Header.Set(kv[0], kv[1])
			}
		},
		Transport: peerRoundTripper{},
		ModifyResponse: func(resp *http.Response) error {
			if resp.Header.Get(fleetRefusedHeader) != "" {
				resp.Body.Close()
				return errNoSessionThere
			}
			return nil
		},
		BufferPool:   relay.BufferPool{},
		ErrorHandler: f.proxyError,
		ErrorLog:     slogErrorLog(f.s.log),
	}
}

// fleetHeaders are the link-only headers of a forwarded request.
func fleetHeaders(r *http.Request) [2][2]string {
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	return [2][2]string{{fleetClientHeader, r.RemoteAddr}, {fleetProtoHeader, proto}}
}

func isFleetHeader(k string) bool {
	return k == fleetClientHeader || k == fleetProtoHeader || k == fleetRefusedHeader
}

// serveHTTP forwards a request for a host this edge has no session for to
// an edge that has one. It returns false when no edge has (the caller
// answers).
//
// A bodiless HTTP/1.x request hands its whole connection over: the edge
// that serves the host gets the request and every byte after it, and this
// edge only copies bytes both ways, parsing nothing more. The rest go
// request by request over the pool.
//
// A request that came over a link is forwarded at most once more, so
// forwarding never loops: one on a pooled stream is refused (its sender
// tries another edge); one on a connection handed over for another host
// (a client or proxy may reuse a connection across hosts) goes over the
// pool.
func (f *edgeFleet) serveHTTP(w http.ResponseWriter, r *http.Request, host string) bool {
	lc := linkOf(r)
	if lc != nil && lc.pooled {
		if ep, ok := f.s.reg.host(host); ok && ep.size() > 0 {
			return false // a draining edge serves what it was sent itself
		}
		w.Header().Set(fleetRefusedHeader, "no-session")
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusMisdirectedRequest)
		return true
	}
	l, ok := f.store.Lookup(hostKey(host))
	if !ok {
		return false
	}
	peers := f.peersHolding(l)
	if len(peers) == 0 {
		if !l.Released.IsZero() && time.Since(l.Released) < f.s.cfg.ReclaimGrace {
			offline(w, r, host)
			return true
		}
		return false
	}
	if !h1.Forwardable(r) {
		// A body goes to the first edge only: once sent it cannot be sent
		// again to another.
		if r.ProtoMajor == 1 && r.Body != http.NoBody {
			http.NewResponseController(w).EnableFullDuplex()
		}
		f.proxyVia(w, r, peers)
		return true
	}
	if lc == nil && f.handOver(w, r, host, peers) {
		return true
	}
	var last error
	for _, m := range peers {
		var done bool
		if done, last = f.forwardFast(w, r, m); done {
			return true
		}
	}
	if last != nil {
		page(w, r, http.StatusBadGateway, "Bad gateway",
			fmt.Sprintf("No edge of the fleet that serves %s could take the request (%v).", host, last))
		return true
	}
	offline(w, r, host)
	return true
}

// handOver forwards the connection of a bodiless HTTP/1.x request whole
// to the first edge in peers that accepts it, and relays it until either
// end closes. It returns false, having done nothing, when the connection
// cannot be taken over (HTTP/2, a draining edge) or no edge accepts it.
func (f *edgeFleet) handOver(w http.ResponseWriter, r *http.Request, host string, peers []fleet.Member) bool {
	hj := hijacker(w)
	// A draining edge keeps parsing: its HTTP server then ends each
	// connection between requests, where a raw relay would be cut.
	if hj == nil || r.ProtoMajor != 1 || f.s.draining.Load() {
		return false
	}
	h := fleet.Header{Kind: fleet.KindHTTP, Key: hostKey(host), RemoteAddr: r.RemoteAddr}
	if r.TLS != nil {
		h.Kind = fleet.KindHTTPS
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		h.LocalAddr = la.String()
	}
	head := requestHead(r)
	for _, m := range peers {
		st, err := f.links.Open(r.Context(), m.Link, h, head)
		if err != nil {
			f.s.log.Debug("fleet: handing a connection over failed; trying the next edge", "host", host, "edge", m.ID, "err", err)
			continue
		}
		c, brw, err := hj.Hijack()
		if err != nil {
			// Not after a check that found a Hijacker; the request was
			// sent, so the stream is cut rather than answered twice.
			st.Close()
			panic(http.ErrAbortHandler)
		}
		f.reqOut.add(m.ID, 1)
		if n := brw.Reader.Buffered(); n > 0 {
			// Pipelined bytes the server read ahead belong to the next
			// requests, which the serving edge answers in order.
			b, _ := brw.Reader.Peek(n)
			if _, err := st.Write(b); err != nil {
				st.Close()
				c.Close()
				return true
			}
		}
		c.SetDeadline(time.Time{})
		relay.Relay(c, st, relay.Options{})
		return true
	}
	return false
}

// requestHead is the head of a bodiless HTTP/1.x request as its client
// sent it, in substance: method, target, version, Host and every header
// (hop-by-hop ones too: the connection goes on as the client's).
func requestHead(r *http.Request) []byte {
	b := make([]byte, 0, 512)
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, r.RequestURI...)
	b = append(b, ' ')
	b = append(b, r.Proto...)
	b = append(b, "\r\nHost: "...)
	b = append(b, r.Host...)
	b = append(b, "\r\n"...)
	for k, vv := range r.Header {
		for _, v := range vv {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// hijacker finds the http.Hijacker under w's wrappers; HTTP/2 has none.
func hijacker(w http.ResponseWriter) http.Hijacker {
	for {
		if h, ok := w.(http.Hijacker); ok {
			return h
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
}

// forwardFast sends a bodiless GET or HEAD to the edge m and copies its
// answer back. It returns false, having written nothing, when m cannot
// serve it (the caller tries the next edge: GET and HEAD may be sent
// again), with the error that stopped it, or none when m has no session
// for the host any more.
func (f *edgeFleet) forwardFast(w http.ResponseWriter, r *http.Request, m fleet.Member) (bool, error) {
	extra := fleetHeaders(r)
	resp, err := f.pool(m).Do(r, func(bw *bufio.Writer) error {
		return h1.WriteHead(bw, r, r.Host, isFleetHeader, extra[:])
	})
	if err != nil {
		if r.Context().Err() != nil {
			return true, nil // the client went away; nobody reads an answer
		}
		f.s.log.Debug("fleet: forwarding a request failed; trying the next edge", "host", r.Host, "edge", m.ID, "err", err)
		return false, err
	}
	if resp.Header.Get(fleetRefusedHeader) != "" {
		resp.Body.Close()
		return false, nil
	}
	f.reqOut.add(m.ID, 1)
	if err := h1.CopyResponse(w, resp); err != nil {
		panic(http.ErrAbortHandler) // a cut-off body must not look complete
	}
	return true, nil
}

// proxyVia sends a request the fast path does not take to the first of
// peers, through the proxy; proxyError sends a bodiless one on to the next
// when that edge cannot serve it.
func (f *edgeFleet) proxyVia(w http.ResponseWriter, r *http.Request, peers []fleet.Member) {
	ctx := context.WithValue(r.Context(), peerPoolKey{}, peerPool{f.pool(peers[0]), peers[0].ID, f, peers[1:]})
	f.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// peerPool is the pool a request with a body goes through, to whom, and
// the edges left to try.
type peerPool struct {
	p    *h1.Pool
	peer string
	f    *edgeFleet
	rest []fleet.Member
}

// peerRoundTripper sends a proxied request through its peer's pool.
type peerRoundTripper struct{}

func (peerRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	pp, ok := req.Context().Value(peerPoolKey{}).(peerPool)
	if !ok {
		return nil, errNoSessionThere
	}
	resp, err := pp.p.RoundTrip(req)
	if err == nil && resp.Header.Get(fleetRefusedHeader) == "" {
		pp.f.reqOut.add(pp.peer, 1)
	}
	return resp, err
}

func (f *edgeFleet) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return
	}
	// Nothing of a bodiless request was used up: the next edge that holds
	// the tunnel may serve it.
	if pp, ok := r.Context().Value(peerPoolKey{}).(peerPool); ok && len(pp.rest) > 0 && (r.Body == nil || r.Body == http.NoBody) {
		f.proxyVia(w, r, pp.rest)
		return
	}
	if errors.Is(err, errNoSessionThere) {
		offline(w, r, r.Host)
		return
	}
	f.s.log.Debug("fleet: forwarding a request failed", "host", r.Host, "err", err)
	page(w, r, http.StatusBadGateway, "Bad gateway",
		fmt.Sprintf("The edge serving %s did not return a response (%v).", r.Host, err))
}

func offline(w http.ResponseWriter, r *http.Request, host string) {
	page(w, r, http.StatusBadGateway, "Tunnel offline",
		fmt.Sprintf("The tunnel %s is offline: its agent disconnected. It comes back at this address when the agent reconnects.", host))
}

// pool returns the kept-alive streams to the edge m, made on first use.
// Pools of edges that left the fleet are closed then, so there are never
// more pools than members.
func (f *edgeFleet) pool(m fleet.Member) *h1.Pool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.pools[m.Link]; p != nil {
		return p
	}
	current := map[string]bool{}
	for _, mm := range f.store.Members() {
		current[mm.Link] = true
	}
	for addr, p := range f.pools {
		if !current[addr] {
			delete(f.pools, addr)
			go p.CloseIdleConnections()
		}
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		return f.links.Open(ctx, m.Link, fleet.Header{Kind: fleet.KindHTTPConn}, nil)
	}
	p := &h1.Pool{
		Dial:        func(ctx context.Context, _ *http.Request) (net.Conn, error) { return dial(ctx) },
		MaxIdle:     peerIdleStreams,
		IdleTimeout: peerIdleTimeout,
		Fallback: &http.Transport{
			DialContext:           func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
			MaxIdleConns:          peerIdleStreams,
			MaxIdleConnsPerHost:   peerIdleStreams,
			IdleConnTimeout:       peerIdleTimeout,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true,
		},
	}
	f.pools[m.Link] = p
	return p
}

func (f *edgeFleet) closePools() {
	f.mu.Lock()
	pools := f.pools
	f.pools = map[string]*h1.Pool{}
	f.mu.Unlock()
	for _, p := range pools {
		p.CloseIdleConnections()
	}
}

// serveForwarded serves a request another edge forwarded here: as the
// public request it was, from the client address the link carried.
func (f *edgeFleet) serveForwarded(w http.ResponseWriter, r *http.Request) {
	lc := linkOf(r)
	if lc == nil {
		return // only links feed this server
	}
	overTLS := lc.tls
	if lc.pooled {
		if c := r.Header.Get(fleetClientHeader); c != "" {
			r.RemoteAddr = c
		}
		overTLS = r.Header.Get(fleetProtoHeader) == "https"
	}
	if overTLS {
		// The forwarding edge ended the client's TLS; what reads r.TLS
		// (the forwarding headers, secure cookies) must see it did.
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, ServerName: host}
	}
	for _, h := range []string{fleetClientHeader, fleetProtoHeader, fleetRefusedHeader} {
		delete(r.Header, h)
	}
	// Counted before the response leaves, so that whoever got it finds
	// it counted; a refusal (the sender tries another edge) is taken back.
	f.reqIn.add(lc.peer, 1)
	f.s.ServeHTTP(w, r)
	if w.Header().Get(fleetRefusedHeader) != "" {
		f.reqIn.add(lc.peer, ^uint64(0))
	}
}

// pairCounts counts requests by peer edge.
type pairCounts struct{ m sync.Map } // edge ID → *atomic.Uint64

func (c *pairCounts) add(peer string, n uint64) {
	v, ok := c.m.Load(peer)
	if !ok {
		v, _ = c.m.LoadOrStore(peer, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(n)
}

func (c *pairCounts) snapshot() map[string]uint64 {
	out := map[string]uint64{}
	c.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}
