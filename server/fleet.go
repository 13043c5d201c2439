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

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/fleet"
	"github.com/sluicehq/sluice/internal/cfgerr"
	"github.com/sluicehq/sluice/internal/h1"
	"github.com/sluicehq/sluice/mux"
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

	// in carries the kept-alive HTTP streams other edges open here to
	// httpSrv, which serves their requests as public ones marked as
	// forwarded (they are never forwarded again).
	in      *connQueue
	httpSrv *http.Server
	proxy   *httputil.ReverseProxy
	pools   map[string]*h1.Pool // peer link address → kept-alive HTTP streams
	// tcpOut counts the public TCP connections this edge is relaying to
	// another edge now: a draining edge waits for them as for its own.
	tcpOut atomic.Int64
	// requests forwarded to (out) and taken from (in) each peer edge.
	reqOut, reqIn pairCounts

	ready   func() // called once the registry is open: events start
	mu      sync.Mutex
	mirrors map[string]*mirror      // TCP and UDP port key → its mirror
	owners  ownerLocks              // one write of an owner's count at a time
	counts  map[ownerID]*ownerCount // guarded by s.ownerMu
	closing bool
}

// openFleet joins the fleet when the edge is configured for one.
func (s *Server) openFleet() error {
	c := s.cfg
	if c.FleetListen == "" {
		return nil
	}
	f := &edgeFleet{s: s, in: newConnQueue(), mirrors: map[string]*mirror{}, pools: map[string]*h1.Pool{}, counts: map[ownerID]*ownerCount{}}
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
	// Links take the agents' session settings but not their accept
	// backlog: an agent opens no streams to the edge, while a peer opens
	// one per forwarded connection, in bursts as wide as the public load.
	linkMux := c.Mux
	linkMux.AcceptBacklog = mux.DefaultAcceptBacklog
	f.links, err = fleet.ListenLinks(context.Background(), fleet.LinkConfig{
		Listen: c.FleetListen, Secret: c.FleetSecret, EdgeID: st.ID(), Handler: f.accept, Mux: linkMux, Logger: s.log,
	})
	if err != nil {
		st.Close()
		return fmt.Errorf("server: fleet links on %s: %w", c.FleetListen, err)
	}
	f.initHTTP()
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
	f.closePools()
	f.links.Close()
	f.httpSrv.Close()
	f.store.Close()
}

// accept serves a stream another edge forwarded here, when this edge has a
// session for its key.
func (f *edgeFleet) accept(from string, h fleet.Header) (func(net.Conn), error) {
	switch h.Kind {
	case fleet.KindHTTPConn:
		return f.serveLinkConn(&linkConn{peer: from, pooled: true}), nil
	case fleet.KindHTTP, fleet.KindHTTPS:
		host, ok := strings.CutPrefix(h.Key, "host:")
		if !ok {
			return nil, fmt.Errorf("%s is not a hostname key", h.Key)
		}
		ep, ok := f.s.reg.host(host)
		if !ok || ep.size() == 0 {
			return nil, fleet.NoSessionError{Key: h.Key}
		}
		return f.serveLinkConn(&linkConn{remote: h.RemoteAddr, local: h.LocalAddr, peer: from, tls: h.Kind == fleet.KindHTTPS}), nil
	case fleet.KindTCP:
		return f.acceptTCP(h)
	case fleet.KindUDP:
		return f.acceptUDP(h)
	}
	return nil, fmt.Errorf("this edge does not take forwarded %d streams", h.Kind)
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

// linkConn is a forwarded stream as a public connection: its addresses
// are the client's and the public one the link's header carried.
type linkConn struct {
	net.Conn
	remote, local string
	peer          string // the edge that forwarded it
	// pooled marks a kept-alive stream of requests from many clients,
	// each naming its own; otherwise the stream is one client's
	// connection, handed over whole.
	pooled bool
	tls    bool // the client's connection was TLS, ended by the peer
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
