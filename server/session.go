package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/h1"
	"github.com/sluicehq/sluice/mux"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/relay"
	"github.com/sluicehq/sluice/transport"
)

// agentConn is one authenticated agent: its mux session, its control stream
// and the tunnels it registered.
type agentConn struct {
	s      *Server
	sess   *mux.Session
	ctrl   *mux.Stream
	id     string
	remote string
	since  time.Time
	owner  ownerID
	// software is what the agent's Hello says it is ("sluice-agent/v1.2.3"),
	// for the admin listing and the logs.
	software string
	// fleetAware is set when the agent's Hello asked for the fleet's
	// edges: it may be sent Fleet messages.
	fleetAware bool
	rulep      atomic.Pointer[rule] // the token's rule; replaced on reload
	log        *slog.Logger

	wmu sync.Mutex // serializes writes to ctrl

	mu      sync.Mutex
	tunnels []*tunnel
	revoked bool
}

func (ac *agentConn) currentRule() *rule { return ac.rulep.Load() }

// tunnel is one registered tunnel: one agent's membership of an endpoint.
type tunnel struct {
	ac *agentConn
	// further: in a fleet, one more session's share of a tunnel another
	// edge serves for the same agent, which the fleet counts there.
	further bool
	id      uint32
	kind    control.Kind
	name    string
	host    string // HTTP: the routed hostname
	port    int    // TCP: the public port
	url     string
	ep      *endpoint
	tr      *h1.Pool // HTTP only: the proxy's pool of streams to the agent
	// proxyProto is the PROXY protocol version the agent writes to its local
	// service ("v1", "v2" or empty): its streams carry the local address too,
	// and an HTTP tunnel's streams are never shared between clients.
	proxyProto string

	// meter and streams feed metrics and the admin listing; meter is
	// only handed to relays when the edge is metering.
	meter   relay.Meter
	streams atomic.Int64
	// opened counts the streams ever opened to the agent for this tunnel:
	// a request the policy refused must leave it as it was.
	opened atomic.Uint64

	// policy is the tunnel's compiled traffic policy (the edge's, the
	// owner's and the agent's rules), nil when it has none; a reload
	// replaces it. refusals batches what the agent is told of refusals.
	policy      atomic.Pointer[tunnelPolicy]
	agentPolicy *policy.Spec // what the agent sent, kept for reloads
	refusals    *refusals
	// requests counts HTTP responses by class (1xx..5xx) while metering.
	requests [5]atomic.Int64
}

// open starts a stream to the agent for one public connection and writes the
// stream header naming the tunnel and the public client. The address the
// client connected to comes from ctx (http.LocalAddrContextKey), as the HTTP
// proxy's dials carry it. The stream counts against its owner's stream limit
// until the caller calls release, once, when it is done with the stream.
func (t *tunnel) open(ctx context.Context, remote string) (st *mux.Stream, release func(), err error) {
	local := ""
	if a, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a.String()
	}
	return t.openFor(ctx, remote, local, nil)
}

// openFor is open with the client's local address given; first, if any,
// is what the client already sent, which goes out with the stream header.
func (t *tunnel) openFor(ctx context.Context, remote, local string, first []byte) (*mux.Stream, func(), error) {
	release, err := t.ac.s.acquireStream(t.ac)
	if err != nil {
		return nil, nil, err
	}
	var hdr [7 + 2*control.MaxAddrLen]byte
	h := control.StreamHeader{Tunnel: t.id, RemoteAddr: remote}
	if t.proxyProto != "" || t.kind == control.KindUDP {
		h.LocalAddr, h.WithLocal = local, true
	}
	// The header (and the client's first bytes) go out with the OPEN, in
	// one write when the session's connection is free.
	st, err := t.ac.sess.OpenStreamWith(ctx, append(control.AppendHeader(hdr[:0], h), first...))
	if err != nil {
		release()
		return nil, nil, err
	}
	t.opened.Add(1)
	return st, release, nil
}

// serveAgent takes one agent connection through its handshakes (TLS, the
// sluice preface, the session, Hello and Auth) and then serves its control
// stream with no goroutine of its own: each control message is answered on
// a goroutine started when it arrives (see serveControl), and the session's
// end is handled on the one that finds it. The handshakes grow this
// goroutine's stack (TLS above all); it is freed when this returns.
func (s *Server) serveAgent(ctx context.Context, p *pending, src string) {
	ac, unhook := s.admitAgent(ctx, p, src)
	if ac == nil {
		return
	}
	s.wg.Add(1)
	s.sessions.Store(ac, struct{}{})
	s.consoleChanged()
	ac.log.Info("agent connected", "software", ac.software)
	ac.serveControl(func(err error) {
		defer s.wg.Done()
		defer unhook()
		s.endAgent(ctx, ac, err)
	})
}

// admitAgent runs an agent connection's handshakes. It returns the admitted
// agent, whose session ctx's end closes until unhook is called, or nil
// after closing the connection.
func (s *Server) admitAgent(ctx context.Context, p *pending, src string) (*agentConn, func() bool) {
	conn := p.conn
	remote := conn.RemoteAddr().String()
	log := s.log.With("agent", remote)
	inGate := true
	leave := func() {
		if inGate {
			inGate = false
			s.gate.leave(p)
		}
	}
	defer leave()
	deadline := time.Now().Add(s.cfg.HandshakeTimeout)
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := transport.Handshake(hctx, conn); err != nil {
		s.warn.warn(src, "agent TLS handshake failed", "err", err)
		conn.Close()
		return nil, nil
	}
	pconn, err := awaitPreface(conn, deadline)
	if err != nil {
		s.warn.warn(src, "agent connection closed before a session: no sluice preface", "err", err)
		if errors.Is(err, errNoPreface) {
			namePeer(conn)
		}
		conn.Close()
		return nil, nil
	}
	conn = pconn
	s.gate.spoke(p)
	sess, err := mux.Server(conn, s.cfg.Mux)
	if err != nil {
		log.Warn("starting the agent session failed", "err", err)
		conn.Close()
		return nil, nil
	}
	// The edge shutting down ends the session wherever it is, even one still
	// in its handshake that Serve's sweep of registered sessions would miss.
	unhook := context.AfterFunc(ctx, func() { sess.Close() })
	admitted := false
	defer func() {
		if !admitted {
			unhook()
			sess.Close()
		}
	}()
	ctrl, err := sess.AcceptStream(hctx)
	if err != nil {
		s.warn.warn(src, "agent opened no control stream", "err", err)
		return nil, nil
	}
	// The agent opens only the control stream; anything else is refused so it
	// cannot pile up in the accept backlog.
	sess.RefuseStreams()
	ctrl.SetDeadline(deadline)
	ac := &agentConn{s: s, sess: sess, ctrl: ctrl, id: newSessionID(), remote: remote, since: time.Now()}
	if refused, err := s.handshake(ac, src, log); err != nil {
		if refused {
			// Let the agent read the error before the session closes: wait
			// for it to hang up, briefly.
			ctrl.CloseWrite()
			ctrl.SetReadDeadline(time.Now().Add(2 * time.Second))
			io.Copy(io.Discard, ctrl)
		}
		return nil, nil
	}
	leave()
	ctrl.SetDeadline(time.Time{})
	ac.log = log.With("session", ac.id, "owner", ac.currentRule().ownerName)
	admitted = true
	return ac, unhook
}

// endAgent unroutes an admitted agent's tunnels once its control stream
// ended with err, and closes its session.
func (s *Server) endAgent(ctx context.Context, ac *agentConn, err error) {
	sess := ac.sess
	defer s.sessions.Delete(ac)
	defer sess.Close()
	gone := ac.teardown()
	if errors.Is(err, io.EOF) {
		// The agent closed the control stream: it is shutting down and has
		// sent GOAWAY. Nothing routes to it any more; let the streams in
		// flight finish until it hangs up (bounded), closing proxy streams
		// as soon as they turn idle so they do not hold its drain.
		ac.ctrl.Close()
		ac.drain(ctx, gone)
	}
	sess.Close()
	switch {
	case err == nil || errors.Is(err, io.EOF):
		ac.log.Info("agent disconnected")
	case ctx.Err() != nil:
		ac.log.Info("agent session closed: edge shutting down")
	default:
		ac.log.Info("agent session ended", "err", err)
	}
}

// handshake reads Hello and Auth and answers Welcome, or an Error whose
// message tells the agent's user what to fix (refused is then true).
func (s *Server) handshake(ac *agentConn, src string, log *slog.Logger) (refused bool, err error) {
	refuse := func(code, msg string) (bool, error) {
		s.countRefusal(code)
		control.WriteMessage(ac.ctrl, &control.Error{Code: code, Message: msg})
		return true, errors.New(msg)
	}
	m, err := control.ReadMessage(ac.ctrl)
	if err != nil {
		s.warn.warn(src, "agent handshake failed: reading hello", "err", err)
		return false, err
	}
	hello, ok := m.(control.Hello)
	if !ok {
		s.warn.warn(src, "agent handshake failed: first message is not hello", "type", m.Type())
		return refuse(control.CodeBadRequest, fmt.Sprintf("expected hello as the first control message, got %s", m.Type()))
	}
	if hello.Version != control.Version {
		log.Warn("agent speaks another control protocol version", "agent_version", hello.Version, "edge_version", control.Version, "software", hello.Software)
		return refuse(control.CodeVersion, fmt.Sprintf("agent speaks control protocol v%d, this edge speaks v%d: run the same sluice release on both sides", hello.Version, control.Version))
	}
	m, err = control.ReadMessage(ac.ctrl)
	if err != nil {
		s.warn.warn(src, "agent handshake failed: reading auth", "err", err)
		return false, err
	}
	auth, ok := m.(control.Auth)
	if !ok {
		return refuse(control.CodeBadRequest, fmt.Sprintf("expected auth after hello, got %s", m.Type()))
	}
	r := s.auth.Load().authenticate(auth.Token)
	if r == nil {
		// Slow the next guess from this address; the pending-connection cap
		// per source bounds how many guesses can wait at once.
		delay := s.fails.fail(src, s.cfg.Limits.AuthFailureDelay)
		s.warn.warn(src, "agent authentication failed: wrong token")
		select {
		case <-time.After(delay):
		case <-ac.sess.Done():
		}
		return refuse(control.CodeUnauthorized, "the edge rejected the token")
	}
	ac.rulep.Store(r)
	ac.owner = r.owner
	ac.software = printable(hello.Software, maxSoftware)
	ac.fleetAware = hello.Fleet
	w := control.Welcome{Version: control.Version, Software: Software, Session: ac.id}
	s.welcomeFleet(&w, hello.Fleet)
	return false, control.WriteMessage(ac.ctrl, w)
}

// maxSoftware bounds the agent's self-description kept for the listing.
const maxSoftware = 100

// printable keeps at most n bytes of s, without control characters, so an
// agent's self-description cannot forge lines in a log or a terminal.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}

// serveControl answers Register messages until the control stream ends,
// then calls end with why (io.EOF when the agent closed it). An idle
// session spends its life here with no goroutine waiting: one starts when a
// message arrives, decodes and answers it (JSON, a listener, the lease
// store) and ends, so neither a goroutine nor the deep stack those need
// stays with every idle session.
func (ac *agentConn) serveControl(end func(error)) {
	ac.ctrl.AfterReadable(func() {
		if err := ac.answer(ac.ctrl); err != nil {
			end(err)
			return
		}
		ac.serveControl(end)
	})
}

// answer reads one control message from r and writes the reply. It returns
// io.EOF if r ended before the message's first byte.
func (ac *agentConn) answer(r io.Reader) error {
	m, err := control.ReadMessage(r)
	if err != nil {
		return err
	}
	var reply control.Message
	switch m := m.(type) {
	case control.Register:
		reply = ac.register(m)
	default:
		reply = &control.Error{Code: control.CodeBadRequest, Message: fmt.Sprintf("unexpected %s message after the handshake", m.Type())}
	}
	return ac.write(reply)
}

func (ac *agentConn) write(m control.Message) error {
	ac.wmu.Lock()
	defer ac.wmu.Unlock()
	return control.WriteMessage(ac.ctrl, m)
}

// revoke tells the agent why its session ends (its tunnel was taken over,
// its token was removed), unroutes its tunnels and closes the session once
// the agent hung up, or after 2 s.
func (ac *agentConn) revoke(code, msg string) {
	ac.mu.Lock()
	if ac.revoked {
		ac.mu.Unlock()
		return
	}
	ac.revoked = true
	ac.mu.Unlock()
	ac.log.Warn("closing the agent's session", "code", code, "reason", msg)
	ac.s.wg.Add(1)
	go func() {
		defer ac.s.wg.Done()
		ac.ctrl.SetWriteDeadline(time.Now().Add(2 * time.Second))
		ac.write(&control.Error{Code: code, Message: msg})
		ac.teardown()
		select {
		case <-ac.sess.Done():
		case <-time.After(2 * time.Second):
		}
		ac.sess.Close()
	}()
}

// maxDrain bounds how long the edge waits for a departing agent's streams.
const maxDrain = 2 * time.Minute

func (ac *agentConn) drain(ctx context.Context, gone []*tunnel) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	limit := time.NewTimer(maxDrain)
	defer limit.Stop()
	for {
		select {
		case <-ac.sess.Done():
			return
		case <-ctx.Done():
			return
		case <-limit.C:
			return
		case <-tick.C:
			if ac.sess.NumStreams() == 0 {
				// Everything finished and every close reached the agent:
				// hanging up now loses nothing.
				return
			}
			for _, t := range gone {
				if t.tr != nil {
					t.tr.CloseIdleConnections()
				}
			}
		}
	}
}

// teardown unroutes the session's tunnels; an endpoint's last member going
// closes its listener and starts its lease's grace.
func (ac *agentConn) teardown() []*tunnel {
	ac.mu.Lock()
	tunnels := ac.tunnels
	ac.tunnels = nil
	ac.mu.Unlock()
	for _, t := range tunnels {
		ac.s.reg.release(t)
		if t.ep != nil && t.ep.udp != nil {
			t.ep.udp.endFlowsOf(t)
		}
		if t.tr != nil {
			t.tr.CloseIdleConnections()
		}
		ac.s.uncount(t)
		ac.log.Info("tunnel offline", "url", t.url)
	}
	ac.s.consoleChanged()
	return tunnels
}
