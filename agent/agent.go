// Package agent is the sluice client that runs beside a local service: it
// dials the edge, authenticates, registers tunnels, and turns every stream
// the edge opens into a connection to the local service (or, through Listen,
// into a net.Conn handed to your program).
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/buildinfo"
	"github.com/sluicehq/sluice/mux"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/relay"
	"github.com/sluicehq/sluice/transport"
)

// Software names this build in the Hello message; the edge shows it in its
// admin listing.
var Software = buildinfo.Get().Software("sluice-agent")

// Tunnel describes one tunnel to register.
type Tunnel struct {
	// Kind is control.KindHTTP, control.KindTCP or control.KindUDP.
	Kind control.Kind
	// Name is the subdomain asked for (HTTP) or a label (TCP). Empty lets the
	// edge pick a readable random name.
	Name string
	// Hostname routes an exact host to this tunnel instead of a subdomain of
	// the edge's domain (HTTP only).
	Hostname string
	// RemotePort is the public TCP port asked for; 0 lets the edge choose.
	RemotePort int
	// Local is the local service, "host:port". Required unless Handler is
	// set or the tunnel comes from Listen.
	Local string
	// Handler, when set on an HTTP tunnel, serves requests in-process
	// instead of proxying to Local.
	Handler http.Handler
	// Fallback, when set on an HTTP tunnel, serves requests that cannot
	// reach Local (connection refused) instead of the 502 page.
	Fallback http.Handler
	// LogRequests logs one line per HTTP request: method, path, status,
	// duration. It makes the agent parse HTTP; an HTTP tunnel without it (and
	// without Handler or Fallback) pipes bytes to Local untouched, and a
	// local service that is down shows as the edge's 502 page.
	LogRequests bool
	// Pool shares the name or port with other agents of the same owner that
	// pool it too: the edge spreads connections across them.
	Pool bool
	// Takeover replaces a live holder of the same owner (one whose session
	// is half-dead) on the first registration; the holder is told and stops.
	Takeover bool
	// UpstreamProtocol is how the agent speaks to Local: UpstreamHTTP1 (the
	// default) or UpstreamHTTP2 (h2c, or h2 with UpstreamTLS), which gRPC
	// services need. See upstream.go.
	UpstreamProtocol string
	// UpstreamTLS, when set, makes the agent speak HTTPS to Local with this
	// configuration (its roots, or InsecureSkipVerify).
	UpstreamTLS *tls.Config
	// HostHeader is the Host the local service sees: HostPreserve (the
	// default, the public host), HostRewrite (Local's host:port) or any
	// literal host.
	HostHeader string
	// ProxyProtocol, "v1" or "v2", makes the agent start every connection
	// to Local with a PROXY protocol header naming the public client (TCP
	// tunnels, and HTTP tunnels that pipe bytes: no LogRequests, Handler or
	// Fallback). Empty sends none.
	ProxyProtocol string
	// Policy is the tunnel's traffic policy: rules the edge enforces before
	// a request or connection reaches the agent (see package policy). Nil
	// or empty: none of its own (the edge may still apply the operator's
	// and the owner's).
	Policy *policy.Spec

	listener *Listener // set by Listen: streams go to its Accept
}

// UnreachableError means the edge could not be reached before the first
// session came up.
type UnreachableError struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the edge at %s (check the address, that the edge runs and a firewall lets the port through, and that both sides agree on TLS): %v", e.Addr, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// TLSError means the TLS handshake with the edge failed in a way retrying
// cannot fix: an unknown CA, a name mismatch, a pin mismatch, or an edge
// that does not speak TLS.
type TLSError struct {
	Addr string
	Err  error
}

func (e *TLSError) Error() string {
	return fmt.Sprintf("TLS with the edge at %s failed: %v: trust the edge's CA or pin its key, or turn TLS off on both sides", e.Addr, e.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

// Agent keeps a session with the edge alive and serves its tunnels.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	dialer transport.Dialer
	fwds   []*tunnelState

	metrics *agentMetrics // nil unless Config.Metrics is set
	live    atomic.Pointer[liveSession]
	// book is the edges the agent may keep sessions to; learned is the
	// dialer for addresses a fleet told it (see dialerFor).
	book    *edgeBook
	learned transport.Dialer
}

// tunnelState is a configured tunnel plus what outlives sessions: its HTTP
// server and the throttle of its "local service down" log line.
type tunnelState struct {
	index int
	cfg   Tunnel
	http  *httpForwarder
	down  burstLog
	lease lease // what the edge assigned, presented on every reconnect

	// meter counts bytes for metrics; assigned is what the edge last
	// confirmed for this tunnel (name, URL).
	meter    relay.Meter
	assigned atomic.Pointer[control.Assigned]
}

// New fills cfg's zero fields, validates it and prepares an agent; Run
// connects it.
func New(cfg Config) (*Agent, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	a := &Agent{cfg: cfg, log: log}
	for i, t := range cfg.Tunnels {
		ts := &tunnelState{index: i, cfg: t}
		// Parsing HTTP on the agent is what logs each request and answers a
		// 502 page when the local service is down; without those, the tunnel
		// pipes bytes like a TCP tunnel, which served ~20% more small
		// requests per second in a loopback run (see README).
		if t.Kind == control.KindHTTP && t.listener == nil && (t.LogRequests || t.Handler != nil || t.Fallback != nil || needsParsing(t) || wrapsHTTP(cfg, t)) {
			ts.http = newHTTPForwarder(ts, log)
		}
		a.fwds = append(a.fwds, ts)
	}
	if err := a.initObservability(); err != nil {
		return nil, fmt.Errorf("agent: registering metrics: %w", err)
	}
	d, err := transport.NewDialer(transport.DefaultTCPOptions(), cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.dialer = d
	a.book = newEdgeBook(cfg.edges())
	a.learned = d
	if cfg.TLS != nil && cfg.TLS.ServerName == "" {
		// An edge the fleet names by address is checked against the name
		// the agent was given: the fleet's edges share it.
		host, _, _ := net.SplitHostPort(cfg.Server)
		tc := cfg.TLS.Clone()
		tc.ServerName = host
		if a.learned, err = transport.NewDialer(transport.DefaultTCPOptions(), tc); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	return a, nil
}

// dialerFor is the dialer for addr: an address the agent was given is
// checked against its own host name; one the fleet told it by IP, against
// the name of the first given address.
func (a *Agent) dialerFor(addr string) transport.Dialer {
	if a.book.isGiven(addr) {
		return a.dialer
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host) == nil {
		return a.dialer
	}
	return a.learned
}

// Run connects to the edge, registers the tunnels and serves them,
// reconnecting with backoff whenever the session dies. It returns nil after
// ctx ends (once in-flight connections finish or ShutdownTimeout passes), a
// *control.Error when the edge refuses the token or a name, an
// *UnreachableError when the first session cannot be set up in time, and a
// *TLSError when the edge's identity cannot be verified.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, ts := range a.fwds {
		if ts.http != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ts.http.serve()
			}()
		}
	}
	defer func() {
		for _, ts := range a.fwds {
			if ts.http != nil {
				ts.http.close()
			}
		}
		wg.Wait()
	}()

	return a.runSlots(ctx)
}

// fatal reports whether retrying cannot fix err.
func fatal(err error) bool {
	var ce *control.Error
	if errors.As(err, &ce) {
		return ce.Code != control.CodeInternal
	}
	var wp *WrongPeerError
	return errors.As(err, &wp) || isTLSFailure(err)
}

func isTLSFailure(err error) bool {
	var (
		pin    *transport.PinMismatchError
		record tls.RecordHeaderError
	)
	return certRefused(err) || errors.As(err, &pin) || errors.As(err, &record)
}

func classify(addr string, err error) error {
	var wp *WrongPeerError
	if errors.As(err, &wp) {
		return wp
	}
	if isTLSFailure(err) {
		return &TLSError{Addr: addr, Err: err}
	}
	var ce *control.Error
	if errors.As(err, &ce) {
		return ce
	}
	return err
}

// liveSession is one connected, registered session.
type liveSession struct {
	sess *mux.Session
	ctrl *mux.Stream
	byID map[uint32]*tunnelState
	// addr is the edge's address; edge its ID in its fleet and fleet the
	// fleet's edges, from Welcome (empty from an edge not in a fleet).
	addr  string
	edge  string
	fleet []control.Edge
	// ctx is Run's context: UDP flows, which have nothing in flight to
	// finish, end as soon as it does.
	ctx context.Context

	mu      sync.Mutex
	endedBy *control.Error // what the edge said when it ended the session
}

func (ls *liveSession) fatal() error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.endedBy == nil {
		return nil
	}
	return ls.endedBy
}

// connect dials, authenticates and registers every tunnel. Hello, Auth and
// all Registers are written before reading any answer, so the whole setup
// costs one round trip after the transport is up.
//
// A peer that accepts but is slow to answer, or answers wrongly, is probed
// on connections of its own to find out what it is (see probePeer), so an
// agent pointed at the wrong port says what it found within about a second.
func (a *Agent) connect(ctx context.Context, addr string, announce bool) (*liveSession, error) {
	dctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	defer cancel()
	pctx, stopProbe := context.WithCancel(dctx)
	defer stopProbe()
	expectTLS := a.cfg.TLS != nil
	probed := make(chan *WrongPeerError, 1)
	timer := time.AfterFunc(probeAfter, func() {
		wp := probePeer(pctx, addr, expectTLS)
		if wp != nil {
			cancel() // ends the attempt still waiting on the wrong peer
		}
		probed <- wp
	})
	// probeResult stops the probe, or waits for the one under way.
	probeResult := func() *WrongPeerError {
		if timer.Stop() {
			return nil
		}
		return <-probed
	}
	ls, dialed, err := a.attempt(dctx, addr, announce)
	if err == nil {
		stopProbe()
		probeResult()
		return ls, nil
	}
	if wp := probeResult(); wp != nil {
		return nil, wp
	}
	if wp := tlsRecordPeer(addr, err, expectTLS); wp != nil {
		return nil, wp
	}
	var ce *control.Error
	if dialed && !errors.As(err, &ce) && ctx.Err() == nil && !isTLSFailure(err) {
		// The peer accepted and then failed the sluice handshake quickly:
		// find out what it is.
		if wp := probePeer(ctx, addr, expectTLS); wp != nil {
			return nil, wp
		}
	}
	return nil, err
}

// probeAfter is how long a handshake may take before the peer is probed: a
// healthy edge has answered by then on most links, and with probeBudget it
// bounds naming a wrong peer to about a second. Probing a slow but healthy
// edge costs it two short connections and changes nothing.
const probeAfter = 250 * time.Millisecond

// attempt is one connection attempt; dialed reports whether the transport
// came up, so a failure after it is worth a probe.
func (a *Agent) attempt(ctx context.Context, addr string, announce bool) (ls *liveSession, dialed bool, err error) {
	conn, err := a.dialerFor(addr).DialContext(ctx, addr)
	if err != nil {
		return nil, false, err
	}
	sess, err := mux.Client(conn, a.cfg.Mux)
	if err != nil {
		conn.Close()
		return nil, true, err
	}
	// The handshake reads under the stream's deadline; ctx ending early (a
	// probe found the wrong peer) must end it too.
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	ls, err = a.handshake(ctx, sess, addr, announce)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		sess.Close()
		return nil, true, err
	}
	return ls, true, nil
}

// handshake runs Hello, Auth and the registrations on a new session to
// the edge at addr; announce makes it report the tunnels online (log and
// OnAssigned), which the primary session does and the others need not.
func (a *Agent) handshake(ctx context.Context, sess *mux.Session, addr string, announce bool) (*liveSession, error) {
	ctrl, err := sess.OpenStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the control stream: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		ctrl.SetDeadline(dl)
	}
	msgs := []control.Message{
		control.Hello{Version: control.Version, Software: Software, Fleet: true},
		control.Auth{Token: a.cfg.Token},
	}
	for i, ts := range a.fwds {
		msgs = append(msgs, ts.register(uint32(i+1)))
	}
	for _, m := range msgs {
		if err := control.WriteMessage(ctrl, m); err != nil {
			return nil, err
		}
	}
	m, err := control.ReadMessage(ctrl)
	if err != nil {
		return nil, fmt.Errorf("waiting for the edge to accept the session: %w", err)
	}
	var welcome control.Welcome
	switch m := m.(type) {
	case control.Welcome:
		welcome = m
		a.log.Debug("edge accepted the session", "edge", m.Software, "session", m.Session, "addr", addr, "fleet_edges", len(m.Fleet))
	case *control.Error:
		return nil, m
	default:
		return nil, fmt.Errorf("edge answered hello with %s: is %s a sluice edge of the same release?", m.Type(), addr)
	}
	ls := &liveSession{sess: sess, ctrl: ctrl, byID: make(map[uint32]*tunnelState, len(a.fwds)),
		addr: addr, edge: welcome.Edge, fleet: welcome.Fleet}
	assigned := make([]control.Assigned, 0, len(a.fwds))
	for range a.fwds {
		m, err := control.ReadMessage(ctrl)
		if err != nil {
			return nil, fmt.Errorf("waiting for tunnel registration: %w", err)
		}
		switch m := m.(type) {
		case control.Assigned:
			if m.Ref < 1 || int(m.Ref) > len(a.fwds) {
				return nil, fmt.Errorf("edge assigned an unknown tunnel ref %d", m.Ref)
			}
			if err := a.fwds[m.Ref-1].checkAssigned(m, addr); err != nil {
				return nil, err
			}
			if err := a.fwds[m.Ref-1].checkPolicyAssigned(m, addr); err != nil {
				return nil, err
			}
			ls.byID[m.Tunnel] = a.fwds[m.Ref-1]
			assigned = append(assigned, m)
		case *control.Error:
			return nil, m
		default:
			return nil, fmt.Errorf("edge answered register with %s", m.Type())
		}
	}
	ctrl.SetDeadline(time.Time{})
	for _, m := range assigned {
		ts := a.fwds[m.Ref-1]
		ts.lease.keep(m)
		ts.assigned.Store(&m)
		if ts.cfg.listener != nil {
			ts.cfg.listener.setURL(m.URL)
		}
		if !announce {
			a.log.Debug("tunnel online on another edge too", "url", m.URL, "edge", addr)
			continue
		}
		a.log.Info("tunnel online", "url", m.URL, "local", ts.localLabel())
		if a.cfg.OnAssigned != nil {
			a.cfg.OnAssigned(ts.index, m)
		}
	}
	return ls, nil
}

func (ts *tunnelState) localLabel() string {
	switch {
	case ts.cfg.listener != nil:
		return "in-process listener"
	case ts.cfg.Local == "" && ts.cfg.Handler != nil:
		return "built-in handler"
	}
	return ts.cfg.Local
}

// serve accepts streams until the session ends or ctx does; on ctx it drains.
func (a *Agent) serve(ctx context.Context, ls *liveSession) {
	ls.ctx = ctx
	// The edge never closes the control stream while the session is healthy:
	// its end means the edge dropped this agent.
	ctrlDone := make(chan struct{})
	go func() {
		defer close(ctrlDone)
		for {
			m, err := control.ReadMessage(ls.ctrl)
			if err != nil {
				// While draining, the edge closing its side is expected and
				// the session must outlive it until the drain ends.
				if ctx.Err() == nil {
					ls.sess.Close()
				}
				return
			}
			if ce, ok := m.(*control.Error); ok && ce.Ref == 0 {
				// The edge ends the session and says why (taken over, token
				// removed): reconnecting would not help.
				a.log.Error("the edge closed this session", "code", ce.Code, "reason", ce.Message)
				ls.mu.Lock()
				ls.endedBy = ce
				ls.mu.Unlock()
				ls.sess.Close()
				continue
			}
			if pr, ok := m.(control.PolicyRefused); ok {
				a.policyRefused(ls, pr)
				continue
			}
			if fl, ok := m.(control.Fleet); ok {
				a.book.learn(fl.Edges)
				continue
			}
			a.log.Debug("ignoring an unexpected control message", "type", m.Type())
		}
	}()
	// Each stream the edge opens starts its goroutine right from the
	// session's reader: no goroutine waits in AcceptStream to be woken
	// first. Once the agent shuts down, new streams are reset (the edge
	// opens none after the GOAWAY; these crossed it) and wg is waited for.
	var wg sync.WaitGroup
	var streamsMu sync.Mutex
	closing := false
	ls.sess.HandleStreams(func(st *mux.Stream) {
		streamsMu.Lock()
		if closing {
			streamsMu.Unlock()
			st.Reset()
			return
		}
		wg.Add(1)
		streamsMu.Unlock()
		go func() {
			defer wg.Done()
			if relay := a.handleStream(st, ls); relay != nil {
				// A held connection lives on a fresh goroutine: this one's
				// stack grew to the depth of the dial and would stay that
				// size for the connection's whole life (4 KB more per held
				// connection, measured).
				wg.Add(1)
				go func() {
					defer wg.Done()
					relay()
				}()
			}
		}()
	})
	select {
	case <-ctx.Done():
	case <-ls.sess.Done():
	}
	streamsMu.Lock()
	closing = true
	streamsMu.Unlock()
	var drained chan struct{}
	if ctx.Err() != nil {
		// Graceful: the edge opens nothing new and, seeing the control
		// stream end, unroutes the tunnels and closes its idle proxy
		// streams; in-flight work finishes.
		ls.sess.GoAway()
		ls.ctrl.CloseWrite()
		drained = make(chan struct{})
		go func() {
			wg.Wait()
			for _, ts := range a.fwds {
				if ts.http != nil {
					sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
					ts.http.srv.Shutdown(sctx)
					cancel()
				}
			}
			close(drained)
		}()
		select {
		case <-drained:
			// The edge hangs up once it has seen every stream end; closing
			// first could drop the last frames still queued to it.
			select {
			case <-ls.sess.Done():
			case <-time.After(2 * time.Second):
			}
		case <-time.After(a.cfg.ShutdownTimeout):
			a.log.Warn("shutdown timeout: closing connections still in flight", "timeout", a.cfg.ShutdownTimeout)
		}
	}
	ls.sess.Close()
	wg.Wait()
	if drained != nil {
		<-drained // the HTTP shutdowns end quickly once the session is gone
	}
	<-ctrlDone
}

// handleStream reads the stream header and hands the stream to its tunnel.
// For a TCP forward it returns the relay to run once the local service is
// connected; nil when the stream is already handed over or dropped.
func (a *Agent) handleStream(st *mux.Stream, ls *liveSession) (relay func()) {
	// No deadline: the edge writes the header right behind the OPEN, in the
	// same batch, and a stream that never delivers one still ends with its
	// session; arming a timer per stream would tax every connection.
	hdr, err := control.ReadHeader(st)
	if err != nil {
		a.log.Debug("dropping a stream with a bad header", "err", err)
		st.Reset()
		return nil
	}
	ts := ls.byID[hdr.Tunnel]
	if ts == nil {
		a.log.Debug("dropping a stream for an unknown tunnel", "tunnel", hdr.Tunnel)
		st.Reset()
		return nil
	}
	switch {
	case ts.cfg.listener != nil:
		ts.cfg.listener.deliver(&publicConn{Stream: st, remote: parseAddr(hdr.RemoteAddr)})
	case ts.http != nil:
		ts.http.ln.deliver(&publicConn{Stream: st, remote: parseAddr(hdr.RemoteAddr), meter: a.meterOf(ts)})
	case ts.cfg.Kind == control.KindUDP:
		a.forwardUDP(ls.ctx, ts, st, hdr)
	default:
		return a.forwardTCP(ts, st, hdr)
	}
	return nil
}

// forwardTCP connects to the local service and returns the relay between it
// and st, or nil when the service cannot be reached.
func (a *Agent) forwardTCP(ts *tunnelState, st *mux.Stream, hdr control.StreamHeader) func() {
	remote := hdr.RemoteAddr
	local, err := net.DialTimeout("tcp", ts.cfg.Local, a.cfg.DialTimeout)
	if err != nil {
		ts.down.log(a.log, "local service unreachable: public connections are being closed; start it or fix the address", "local", ts.cfg.Local, "err", err)
		st.Reset()
		return nil
	}
	if ts.cfg.ProxyProtocol != "" {
		if err := writeProxyHeader(local, ts.cfg.ProxyProtocol, hdr); err != nil {
			a.log.Debug("writing the PROXY header to the local service failed", "local", ts.cfg.Local, "err", err)
			local.Close()
			st.Reset()
			return nil
		}
	}
	a.log.Debug("tcp connection", "from", remote, "local", ts.cfg.Local)
	return func() {
		res := relay.Relay(st, local, relay.Options{Meter: a.meterOf(ts)})
		a.log.Debug("tcp connection closed", "from", remote, "in", res.AToB, "out", res.BToA, "err", res.Err)
	}
}

// publicConn is a stream carrying one public connection; RemoteAddr is the
// public client's address as the edge saw it.
type publicConn struct {
	*mux.Stream
	remote net.Addr
	meter  *relay.Meter // nil unless the agent meters (see metrics.go)
}

func (c *publicConn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Stream.RemoteAddr()
}

func parseAddr(s string) net.Addr {
	if s == "" {
		return nil
	}
	if ap, err := net.ResolveTCPAddr("tcp", s); err == nil {
		return ap
	}
	return nil
}

// burstLog logs a recurring failure once per burst, with a count of what it
// left out, so a dead local service under load does not flood the log.
type burstLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const burstWindow = 10 * time.Second

func (b *burstLog) log(l *slog.Logger, msg string, args ...any) {
	b.mu.Lock()
	now := time.Now()
	if now.Sub(b.last) < burstWindow {
		b.suppressed++
		b.mu.Unlock()
		return
	}
	n := b.suppressed
	b.last, b.suppressed = now, 0
	b.mu.Unlock()
	if n > 0 {
		args = append(args, "repeats_not_logged", n)
	}
	l.Warn(msg, args...)
}
