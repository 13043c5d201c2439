package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/h1"
	"github.com/sluicehq/sluice/mux"
	"github.com/sluicehq/sluice/relay"
	"github.com/sluicehq/sluice/transport"
)

// agentConn is one authenticated agent: its mux session, its control stream
// and the tunnels it registered.
type agentConn struct {
	s     *Server
	sess  *mux.Session
	ctrl  *mux.Stream
	id    string
	owner Owner
	log   *slog.Logger
	// remote and since are what the admin listing shows of the session.
	remote string
	since  time.Time

	mu      sync.Mutex
	tunnels []*tunnel
}

// tunnel is one registered tunnel. It is what the registry maps a hostname or
// port to.
type tunnel struct {
	ac   *agentConn
	id   uint32
	kind control.Kind
	name string
	host string // HTTP: the routed hostname
	port int    // TCP: the public port
	url  string
	tr   *h1.Pool     // HTTP only: the proxy's pool of streams to the agent
	ln   net.Listener // TCP only
	udp  *udpTunnel   // UDP only
	// proxyProto is the PROXY protocol version the agent writes to its local
	// service ("v1", "v2" or empty): its streams carry the local address too,
	// and an HTTP tunnel's streams are never shared between clients.
	proxyProto string

	// meter and streams feed metrics and the admin listing; meter is
	// only handed to relays when the edge is metering.
	meter   relay.Meter
	streams atomic.Int64
}

func (t *tunnel) owner() Owner { return t.ac.owner }

// open starts a stream to the agent for one public connection and writes the
// stream header naming the tunnel and the public client. The address the
// client connected to comes from ctx (http.LocalAddrContextKey), as the HTTP
// proxy's dials carry it.
func (t *tunnel) open(ctx context.Context, remote string) (*mux.Stream, error) {
	local := ""
	if a, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a.String()
	}
	return t.openFor(ctx, remote, local)
}

// openFor is open with the client's local address given.
func (t *tunnel) openFor(ctx context.Context, remote, local string) (*mux.Stream, error) {
	st, err := t.ac.sess.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	var hdr [7 + 2*control.MaxAddrLen]byte
	h := control.StreamHeader{Tunnel: t.id, RemoteAddr: remote}
	if t.proxyProto != "" || t.kind == control.KindUDP {
		h.LocalAddr, h.WithLocal = local, true
	}
	if _, err := st.Write(control.AppendHeader(hdr[:0], h)); err != nil {
		st.Reset()
		return nil, err
	}
	return st, nil
}

// serveAgent runs one agent connection from handshake to teardown.
func (s *Server) serveAgent(ctx context.Context, conn net.Conn) {
	remote := conn.RemoteAddr().String()
	log := s.log.With("agent", remote)
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	if err := transport.Handshake(hctx, conn); err != nil {
		log.Warn("agent TLS handshake failed", "err", err)
		conn.Close()
		return
	}
	sess, err := mux.Server(conn, s.cfg.Mux)
	if err != nil {
		log.Warn("starting the agent session failed", "err", err)
		conn.Close()
		return
	}
	defer sess.Close()
	// The edge shutting down ends the session wherever it is, even one still
	// in its handshake that Serve's sweep of registered sessions would miss.
	defer context.AfterFunc(ctx, func() { sess.Close() })()
	ctrl, err := sess.AcceptStream(hctx)
	if err != nil {
		log.Warn("agent opened no control stream", "err", err)
		return
	}
	ctrl.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	ac := &agentConn{s: s, sess: sess, ctrl: ctrl, id: newSessionID(), remote: remote}
	if refused, err := s.handshake(ac, log); err != nil {
		if refused {
			// Let the agent read the error before the session closes: wait
			// for it to hang up, briefly.
			ctrl.CloseWrite()
			ctrl.SetReadDeadline(time.Now().Add(2 * time.Second))
			io.Copy(io.Discard, ctrl)
		}
		return
	}
	ctrl.SetDeadline(time.Time{})
	ac.since = time.Now()
	ac.log = log.With("session", ac.id)
	s.sessions.Store(ac, struct{}{})
	defer s.sessions.Delete(ac)
	ac.log.Info("agent connected")

	// The agent opens only the control stream; anything else is refused so it
	// cannot pile up in the accept backlog.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			st, err := sess.AcceptStream(context.Background())
			if err != nil {
				return
			}
			st.Reset()
		}
	}()

	err = ac.controlLoop()
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
func (s *Server) handshake(ac *agentConn, log *slog.Logger) (refused bool, err error) {
	refuse := func(code, msg string) (bool, error) {
		s.countRefusal(code)
		control.WriteMessage(ac.ctrl, &control.Error{Code: code, Message: msg})
		return true, errors.New(msg)
	}
	m, err := control.ReadMessage(ac.ctrl)
	if err != nil {
		log.Warn("agent handshake failed: reading hello", "err", err)
		return false, err
	}
	hello, ok := m.(control.Hello)
	if !ok {
		log.Warn("agent handshake failed: first message is not hello", "type", m.Type())
		return refuse(control.CodeBadRequest, fmt.Sprintf("expected hello as the first control message, got %s", m.Type()))
	}
	if hello.Version != control.Version {
		log.Warn("agent speaks another control protocol version", "agent_version", hello.Version, "edge_version", control.Version, "software", hello.Software)
		return refuse(control.CodeVersion, fmt.Sprintf("agent speaks control protocol v%d, this edge speaks v%d: run the same sluice release on both sides", hello.Version, control.Version))
	}
	m, err = control.ReadMessage(ac.ctrl)
	if err != nil {
		log.Warn("agent handshake failed: reading auth", "err", err)
		return false, err
	}
	auth, ok := m.(control.Auth)
	if !ok {
		return refuse(control.CodeBadRequest, fmt.Sprintf("expected auth after hello, got %s", m.Type()))
	}
	o, ok := s.authenticate(auth.Token)
	if !ok {
		log.Warn("agent authentication failed: wrong token")
		return refuse(control.CodeUnauthorized, "the edge rejected the token")
	}
	ac.owner = o
	return false, control.WriteMessage(ac.ctrl, control.Welcome{Version: control.Version, Software: Software, Session: ac.id})
}

// controlLoop answers Register messages until the control stream ends.
func (ac *agentConn) controlLoop() error {
	for {
		m, err := control.ReadMessage(ac.ctrl)
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
		if err := control.WriteMessage(ac.ctrl, reply); err != nil {
			return err
		}
	}
}

func regError(ref uint32, code, format string, args ...any) *control.Error {
	return &control.Error{Ref: ref, Code: code, Message: fmt.Sprintf(format, args...)}
}

// register claims the name or port asked for and makes the tunnel live.
func (ac *agentConn) register(r control.Register) control.Message {
	s := ac.s
	t := &tunnel{ac: ac, id: s.nextTunnel.Add(1), kind: r.Kind, name: r.Name}
	err := checkProxyProtocol(t, r)
	if err == nil {
		switch r.Kind {
		case control.KindHTTP:
			err = ac.registerHTTP(t, r)
		case control.KindTCP:
			err = ac.registerTCP(t, r)
		case control.KindUDP:
			err = ac.registerUDP(t, r)
		default:
			err = regError(r.Ref, control.CodeBadRequest, "unknown tunnel kind %q: use http, tcp or udp", r.Kind)
		}
	}
	if err != nil {
		ac.log.Info("tunnel refused", "kind", r.Kind, "name", r.Name, "code", err.Code, "reason", err.Message)
		s.countRefusal(err.Code)
		return err
	}
	ac.mu.Lock()
	ac.tunnels = append(ac.tunnels, t)
	ac.mu.Unlock()
	ac.log.Info("tunnel online", "kind", t.kind, "url", t.url)
	return control.Assigned{Ref: r.Ref, Tunnel: t.id, Kind: t.kind, Name: t.name, Hostname: t.host, Port: t.port, URL: t.url, ProxyProtocol: t.proxyProto}
}

func (ac *agentConn) registerHTTP(t *tunnel, r control.Register) *control.Error {
	s := ac.s
	if s.httpLn == nil && s.https == nil {
		return regError(r.Ref, control.CodeBadRequest, "this edge serves no HTTP tunnels (it has no HTTP ingress): use a tcp tunnel or ask the operator")
	}
	if r.Hostname != "" {
		if !ValidHostname(r.Hostname) {
			return regError(r.Ref, control.CodeBadRequest, "hostname %q is not a valid DNS name", r.Hostname)
		}
		t.host = strings.ToLower(r.Hostname)
		if t.name == "" {
			t.name = t.host
		}
		if t.host == s.cfg.Domain {
			return regError(r.Ref, control.CodeBadRequest, "hostname %q is the edge's own domain, which serves its health check: pick a name under it", r.Hostname)
		}
	} else if t.name != "" && !ValidName(t.name) {
		return regError(r.Ref, control.CodeBadRequest, "name %q is not a valid DNS label: use 1-63 letters, digits and hyphens", t.name)
	}
	t.tr = newTunnelTransport(t)
	for attempt := 0; ; attempt++ {
		if r.Hostname == "" {
			if r.Name == "" {
				t.name = RandomName()
			}
			t.host = strings.ToLower(t.name) + "." + s.cfg.Domain
		}
		old, err := s.reg.ClaimHost(t.host, t)
		if err == nil {
			if old != nil {
				ac.log.Info("hostname taken over by a reconnected agent with the same token", "host", t.host)
			}
			break
		}
		if r.Name == "" && r.Hostname == "" && attempt < 20 {
			continue // a random name collided: draw another
		}
		return regError(r.Ref, control.CodeNameTaken, "%s is in use by another agent (a different token)", t.host)
	}
	t.url = s.httpURL(t.host)
	return nil
}

func (ac *agentConn) registerTCP(t *tunnel, r control.Register) *control.Error {
	s := ac.s
	lo, hi := s.cfg.TCPPortMin, s.cfg.TCPPortMax
	ranged := lo != 0 || hi != 0
	if r.RemotePort < 0 || r.RemotePort > 65535 {
		return regError(r.Ref, control.CodeBadRequest, "remote port %d is out of range 1-65535", r.RemotePort)
	}
	if r.RemotePort != 0 && ranged && (r.RemotePort < lo || r.RemotePort > hi) {
		return regError(r.Ref, control.CodePortTaken, "remote port %d is outside this edge's TCP port range %d-%d", r.RemotePort, lo, hi)
	}
	if t.name == "" {
		t.name = "tcp"
	}
	var lastErr error
	for attempt := 0; attempt < 50; attempt++ {
		port := r.RemotePort
		if port == 0 && ranged {
			port = lo + randInt(hi-lo+1)
		}
		err := ac.bindTCP(t, port)
		if err == nil {
			lastErr = nil
			break
		}
		lastErr = err
		if r.RemotePort != 0 {
			break
		}
	}
	if lastErr != nil {
		return regError(r.Ref, control.CodePortTaken, "%v", lastErr)
	}
	t.url = "tcp://" + net.JoinHostPort(s.cfg.PublicHost, strconv.Itoa(t.port))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serveTCP(t)
	}()
	return nil
}

// bindTCP claims port (0: any) in the registry and listens on it.
func (ac *agentConn) bindTCP(t *tunnel, port int) error {
	s := ac.s
	if port != 0 {
		old, err := s.reg.ClaimPort(port, t)
		if err != nil {
			return fmt.Errorf("TCP port %d is in use by another agent", port)
		}
		if old != nil {
			// Our own token reconnected before its old session died: free
			// the port so this session can bind it.
			old.(*tunnel).ln.Close()
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.TCPHost, strconv.Itoa(port)))
	if err != nil {
		if port != 0 {
			s.reg.ReleasePort(port, t)
		}
		return fmt.Errorf("edge cannot listen on TCP port %d: %v", port, err)
	}
	ln = s.acceptProxy(ln)
	if port == 0 {
		port = ln.Addr().(*net.TCPAddr).Port // acceptProxy keeps Addr
		if _, err := s.reg.ClaimPort(port, t); err != nil {
			ln.Close()
			return fmt.Errorf("ephemeral TCP port %d is reserved for another agent", port)
		}
	}
	t.ln, t.port = ln, port
	return nil
}

// serveTCP accepts public connections of a TCP tunnel until its listener closes.
func (s *Server) serveTCP(t *tunnel) {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handleTCP(t, c)
		}()
	}
}

func (s *Server) handleTCP(t *tunnel, c net.Conn) {
	if !s.resolveProxy(c) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	st, err := t.openFor(ctx, c.RemoteAddr().String(), c.LocalAddr().String())
	cancel()
	if err != nil {
		t.ac.log.Debug("public TCP connection dropped: opening a stream to the agent failed", "port", t.port, "err", err)
		c.Close()
		return
	}
	t.streams.Add(1)
	defer t.streams.Add(-1)
	relay.Relay(c, st, relay.Options{Meter: s.meterOf(t)})
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

// teardown unroutes the session's tunnels and closes their listeners.
func (ac *agentConn) teardown() []*tunnel {
	ac.mu.Lock()
	tunnels := ac.tunnels
	ac.tunnels = nil
	ac.mu.Unlock()
	for _, t := range tunnels {
		switch t.kind {
		case control.KindHTTP:
			ac.s.reg.ReleaseHost(t.host, t)
			t.tr.CloseIdleConnections()
		case control.KindTCP:
			t.ln.Close()
			ac.s.reg.ReleasePort(t.port, t)
		case control.KindUDP:
			t.udp.close()
			ac.s.reg.ReleaseUDPPort(t.port, t)
		}
		ac.log.Info("tunnel offline", "url", t.url)
		if ac.s.metrics != nil {
			ac.s.metrics.forget(t)
		}
	}
	return tunnels
}
