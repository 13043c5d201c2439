package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/fleet"
	"github.com/sluicehq/sluice/internal/cfgerr"
	"github.com/sluicehq/sluice/relay"
	"github.com/sluicehq/sluice/server/leasestore"
)

// The fleet: several edges that share their leases in a JetStream store
// (fleet.Store) and carry each other's public traffic over edge-to-edge
// links (fleet.Links). An edge decides a claim against the fleet's record
// of the key, with compare-and-set, so one address has one owner across
// the fleet; a request that lands on an edge with no session to the
// tunnel's agent goes over a link to an edge that has one.

// edgeFleet is an edge's part in a fleet.
type edgeFleet struct {
	s     *Server
	store *fleet.Store
	links *fleet.Links

	// in carries the HTTP connections other edges forward here to httpSrv,
	// which serves them as public connections marked as forwarded (they
	// are never forwarded again).
	in      *connQueue
	httpSrv *http.Server
	proxy   *httputil.ReverseProxy

	ready   func() // called once the registry is open: events start
	mu      sync.Mutex
	mirrors map[string]*mirror      // TCP and UDP port key → its mirror
	owners  ownerLocks              // one write of an owner's count at a time
	counts  map[ownerID]*ownerCount // guarded by s.ownerMu
	closing bool
}

type forwardedKey struct{}

// openFleet joins the fleet when the edge is configured for one.
func (s *Server) openFleet() error {
	c := s.cfg
	if c.FleetListen == "" {
		return nil
	}
	f := &edgeFleet{s: s, in: newConnQueue(), mirrors: map[string]*mirror{}, counts: map[ownerID]*ownerCount{}}
	var ready atomic.Bool // events wait for the registry
	st, err := fleet.Open(context.Background(), fleet.Config{
		OnEvent: func(ev fleet.Event) {
			if !ready.Load() {
				return
			}
			if ev.Kind == fleet.LeaseSet {
				f.takenOver(ev.Lease)
			}
			switch ev.Kind {
			case fleet.LeaseSet, fleet.LeaseGone:
				f.syncPort(ev.Lease.Key)
			case fleet.EdgeUp, fleet.EdgeDown:
				f.tellAgentsFleet(ev)
			}
		},
		Listen:        c.FleetListen,
		Join:          c.FleetJoin,
		Secret:        c.FleetSecret,
		NATS:          c.NATS,
		NATSCredsFile: c.NATSCredsFile,
		NATSCAFile:    c.NATSCAFile,
		NATSCertFile:  c.NATSCertFile,
		NATSKeyFile:   c.NATSKeyFile,
		StateDir:      c.StateDir,
		Info:          map[string]string{infoAgents: agentAdvertise(s.ctrlLn.Addr(), c.FleetListen)},
		Logger:        s.log,
	})
	if err != nil {
		return fleetConfigErr(err)
	}
	f.store = st
	f.ready = func() {
		ready.Store(true)
		for _, l := range st.Leases() {
			f.syncPort(l.Key)
		}
	}
	f.links, err = fleet.ListenLinks(context.Background(), fleet.LinkConfig{
		Listen: c.FleetListen, Secret: c.FleetSecret, EdgeID: st.ID(), Handler: f.accept, Mux: c.Mux, Logger: s.log,
	})
	if err != nil {
		st.Close()
		return fmt.Errorf("server: fleet links on %s: %w", c.FleetListen, err)
	}
	f.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          slogErrorLog(s.log),
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, forwardedKey{}, true)
		},
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = pr.In.Host
			pr.Out.Host = pr.In.Host
			// The edge that serves the request sets the forwarding
			// headers, from the client address the link carries; what a
			// trusted proxy in front sent goes along for it to extend.
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"} {
				if v, ok := pr.In.Header[h]; ok {
					pr.Out.Header[h] = v
				}
			}
		},
		Transport: &http.Transport{
			DialContext: f.dialHTTP,
			// One stream per request: the stream's header carries the
			// client's address, which differs from request to request.
			DisableKeepAlives:     true,
			ResponseHeaderTimeout: 0,
		},
		BufferPool:   relay.BufferPool{},
		ErrorHandler: s.proxyError,
		ErrorLog:     slogErrorLog(s.log),
	}
	s.fleet = f
	s.log.Info("edge joined the fleet", "edge", st.ID(), "fleet", c.FleetListen, "members", len(st.Members()), "store", storeKind(c))
	return nil
}

func storeKind(c Config) string {
	if c.NATS != "" {
		return "nats " + c.NATS
	}
	return "embedded"
}

// fleetConfigErr names the edge's field for a fleet config error.
func fleetConfigErr(err error) error {
	var ce *cfgerr.Error
	if !errors.As(err, &ce) || ce.Pkg != "fleet" {
		return fmt.Errorf("server: fleet: %w", err)
	}
	field := ce.Field
	switch {
	case field == "Listen" || field == "Advertise":
		field = "FleetListen"
	case strings.HasPrefix(field, "Join"):
		field = "FleetJoin"
	case field == "Secret":
		field = "FleetSecret"
	case field == "StateDir":
	default:
		field = "Fleet" + field
	}
	return &cfgerr.Error{Pkg: "server", Field: field, Reason: ce.Reason, Err: ce.Err}
}

// takenOver tells the agents of a lease an agent on another edge took over
// that they lost it, and lets the endpoint go.
func (f *edgeFleet) takenOver(l fleet.Lease) {
	ep, members := f.s.reg.takenOver(l)
	if ep == nil {
		return
	}
	if ep.ln != nil {
		ep.ln.Close()
	}
	if ep.udp != nil {
		ep.udp.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleet.DefaultOpTimeout)
	f.store.Release(ctx, l.Key) // forget the hold, so a rejoin does not take it back
	cancel()
	for _, t := range members {
		t.ac.revoke(control.CodeTakenOver, fmt.Sprintf("%s was taken over by an agent on another edge of the fleet (same owner, asked to take it over)", t.url))
	}
}

// serve runs the server of forwarded HTTP connections until close.
func (f *edgeFleet) serve(errc chan<- error) {
	f.s.wg.Add(1)
	go func() {
		defer f.s.wg.Done()
		err := f.httpSrv.Serve(f.in)
		if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
			err = nil
		}
		if err != nil {
			errc <- err
		}
	}()
}

func (f *edgeFleet) close() {
	f.closeMirrors()
	f.links.Close()
	f.httpSrv.Close()
	f.store.Close()
}

// accept serves a stream another edge forwarded here, when this edge has a
// session for its key.
func (f *edgeFleet) accept(from string, h fleet.Header) (func(net.Conn), error) {
	switch h.Kind {
	case fleet.KindHTTP:
		host, ok := strings.CutPrefix(h.Key, "host:")
		if !ok {
			return nil, fmt.Errorf("%s is not a hostname key", h.Key)
		}
		ep, ok := f.s.reg.host(host)
		if !ok || ep.size() == 0 {
			return nil, fleet.NoSessionError{Key: h.Key}
		}
		return func(c net.Conn) {
			if !f.in.push(&linkConn{Conn: c, remote: h.RemoteAddr, local: h.LocalAddr}) {
				c.Close()
			}
		}, nil
	case fleet.KindTCP:
		return f.acceptTCP(h)
	case fleet.KindUDP:
		return f.acceptUDP(h)
	}
	return nil, fmt.Errorf("this edge does not take forwarded %d streams", h.Kind)
}

// serveHTTP forwards a request for a host this edge has no session for to
// an edge that has one. It returns false when no edge has (the caller
// answers), and for requests that came over a link.
func (f *edgeFleet) serveHTTP(w http.ResponseWriter, r *http.Request, host string) bool {
	if r.Context().Value(forwardedKey{}) != nil {
		return false
	}
	l, ok := f.store.Lookup(hostKey(host))
	if !ok {
		return false
	}
	if len(f.peersHolding(l)) == 0 {
		if !l.Released.IsZero() && time.Since(l.Released) < f.s.cfg.ReclaimGrace {
			page(w, r, http.StatusBadGateway, "Tunnel offline",
				fmt.Sprintf("The tunnel %s is offline: its agent disconnected. It comes back at this address when the agent reconnects.", host))
			return true
		}
		return false
	}
	ctx := context.WithValue(r.Context(), remoteKey{}, r.RemoteAddr)
	f.proxy.ServeHTTP(w, r.WithContext(ctx))
	return true
}

// peersHolding lists the other edges that hold l, as members, those that
// are leaving last: their sessions are moving away.
func (f *edgeFleet) peersHolding(l fleet.Lease) []fleet.Member {
	var out []fleet.Member
	for _, id := range l.Holders {
		if id == f.store.ID() {
			continue
		}
		if m, ok := f.store.Member(id); ok {
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b fleet.Member) int {
		switch {
		case a.Leaving == b.Leaving:
			return 0
		case a.Leaving:
			return 1
		}
		return -1
	})
	return out
}

// dialHTTP opens a stream for the request's host to an edge that holds
// it, trying each in turn.
func (f *edgeFleet) dialHTTP(ctx context.Context, _, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	key := hostKey(host)
	l, ok := f.store.Lookup(key)
	if !ok {
		return nil, fmt.Errorf("no tunnel for %s in the fleet", host)
	}
	remote, _ := ctx.Value(remoteKey{}).(string)
	var last error = errors.New("no edge of the fleet serves it now")
	for _, m := range f.peersHolding(l) {
		c, err := f.links.Open(ctx, m.Link, fleet.Header{Kind: fleet.KindHTTP, Key: key, RemoteAddr: remote}, nil)
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}

// linkConn is a forwarded stream as a public connection: its addresses
// are the client's and the public one the link's header carried.
type linkConn struct {
	net.Conn
	remote, local string
}

func (c *linkConn) RemoteAddr() net.Addr { return textAddr(c.remote, c.Conn.RemoteAddr()) }
func (c *linkConn) LocalAddr() net.Addr  { return textAddr(c.local, c.Conn.LocalAddr()) }

func textAddr(s string, fallback net.Addr) net.Addr {
	if ap, err := net.ResolveTCPAddr("tcp", s); err == nil && s != "" {
		return ap
	}
	return fallback
}

// connQueue is a net.Listener whose connections are pushed to it.
type connQueue struct {
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.closed.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return &net.TCPAddr{} }

// fleetLeases is the registry's store in a fleet: the registry decides
// claims against the fleet itself (claimShared), and tells it here when
// this edge stops serving a key.
type fleetLeases struct{ st *fleet.Store }

// Load implements leasestore.Store: the fleet's leases are read claim by
// claim, not loaded.
func (f fleetLeases) Load() ([]leasestore.Record, error) { return nil, nil }

// Put implements leasestore.Store: a record no longer connected here means
// this edge let go of the key.
func (f fleetLeases) Put(rec leasestore.Record) error {
	if rec.Connected {
		return nil // claims write through claimShared
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleet.DefaultOpTimeout)
	defer cancel()
	_, err := f.st.Release(ctx, rec.Key)
	if errors.Is(err, fleet.ErrNotFound) {
		return nil
	}
	return err
}

// Delete implements leasestore.Store: the key is removed from the fleet
// when no edge holds it.
func (f fleetLeases) Delete(key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), fleet.DefaultOpTimeout)
	defer cancel()
	l, err := f.st.Release(ctx, key)
	if errors.Is(err, fleet.ErrNotFound) {
		return nil
	}
	if err != nil || len(l.Holders) > 0 {
		return err
	}
	err = f.st.Delete(ctx, key, l.Revision)
	if errors.Is(err, fleet.ErrConflict) {
		return nil // someone holds it again
	}
	return err
}

// Close implements leasestore.Store; the fleet closes with the edge.
func (f fleetLeases) Close() error { return nil }

// fleetRecord is a fleet lease as the registry's record.
func fleetRecord(l fleet.Lease) (leasestore.Record, error) {
	var rec leasestore.Record
	if err := json.Unmarshal(l.Value, &rec); err != nil {
		return rec, fmt.Errorf("fleet lease %s: %w", l.Key, err)
	}
	rec.Key = l.Key
	rec.Connected = len(l.Holders) > 0
	rec.LastSeen = l.Released
	return rec, nil
}
