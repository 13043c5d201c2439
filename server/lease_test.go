package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/edgetest"
	"github.com/sluicehq/sluice/mux"
)

// agentAs is a hand-driven agent authenticated with token.
func agentAs(t *testing.T, s *Server, token string) (*mux.Session, *mux.Stream) {
	t.Helper()
	sess, ctrl := rawAgent(t, s)
	send(t, ctrl, control.Hello{Version: control.Version}, control.Auth{Token: token})
	m, err := control.ReadMessage(ctrl)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(control.Welcome); !ok {
		t.Fatalf("want welcome, got %#v", m)
	}
	return sess, ctrl
}

func expectAssigned(t *testing.T, ctrl io.ReadWriter, r control.Register) control.Assigned {
	t.Helper()
	send(t, ctrl, r)
	m, err := control.ReadMessage(ctrl)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := m.(control.Assigned)
	if !ok {
		t.Fatalf("register %+v: want assigned, got %#v", r, m)
	}
	if a.Lease == "" {
		t.Fatalf("assigned %+v carries no lease", a)
	}
	return a
}

func expectRefused(t *testing.T, ctrl io.ReadWriter, r control.Register, code string, mentions ...string) *control.Error {
	t.Helper()
	send(t, ctrl, r)
	ce := expectError(t, ctrl, code)
	for _, m := range mentions {
		if !strings.Contains(ce.Message, m) {
			t.Fatalf("refusal %q does not mention %q", ce.Message, m)
		}
	}
	return ce
}

// waitGone waits until the edge has seen sess end and released its tunnels.
func waitGone(t *testing.T, s *Server, sess *mux.Session) {
	t.Helper()
	before := s.Stats().Sessions
	sess.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Sessions >= before {
		if time.Now().After(deadline) {
			t.Fatal("the edge still counts the closed session after 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRandomNameComesBackWithItsLease(t *testing.T) {
	s := startServer(t, nil)
	sess, ctrl := handshake(t, s)
	a := expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindHTTP})
	waitGone(t, s, sess)
	if !s.reg.isReserved(a.Hostname) {
		t.Fatalf("%s is not reserved after its agent left", a.Hostname)
	}
	_, ctrl2 := handshake(t, s)
	b := expectAssigned(t, ctrl2, control.Register{Ref: 1, Kind: control.KindHTTP, Name: a.Name, Lease: a.Lease})
	if b.URL != a.URL || b.Lease != a.Lease {
		t.Fatalf("reconnect with the lease got %s (lease %q), want %s (lease %q)", b.URL, b.Lease, a.URL, a.Lease)
	}
}

func TestOfflineNameRefusedToAnotherOwner(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Tokens = []string{"T", "U"} })
	sess, ctrl := agentAs(t, s, "T")
	a := expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindHTTP})
	waitGone(t, s, sess)
	_, u := agentAs(t, s, "U")
	expectRefused(t, u, control.Register{Ref: 1, Kind: control.KindHTTP, Name: a.Name}, control.CodeNameTaken, "reserved", a.Name)
}

func TestLiveNameRefusedEvenToTheSameToken(t *testing.T) {
	s := startServer(t, nil)
	_, ctrl := handshake(t, s)
	a := expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "shared"})
	_, ctrl2 := handshake(t, s)
	expectRefused(t, ctrl2, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "shared"}, control.CodeNameTaken,
		"shared.localhost", "held by a live agent at 127.0.0.1:", "since", "take it over")
	// The first agent still serves the name.
	if ep, ok := s.reg.host("shared.localhost"); !ok || ep.pick().url != a.URL {
		t.Fatal("the refused claim disturbed the holder")
	}
}

func TestLiveTCPPortRefusedEvenToTheSameToken(t *testing.T) {
	s := startServer(t, nil)
	_, ctrl := handshake(t, s)
	a := expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindTCP})
	_, ctrl2 := handshake(t, s)
	expectRefused(t, ctrl2, control.Register{Ref: 1, Kind: control.KindTCP, RemotePort: a.Port}, control.CodePortTaken,
		fmt.Sprintf("TCP port %d", a.Port), "held by a live agent")
}

func TestLeaseReplacesTheSameAgentsHalfDeadSession(t *testing.T) {
	s := startServer(t, nil)
	_, ctrl := handshake(t, s)
	a := expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindTCP})
	// The old session is still up as far as the edge knows.
	_, ctrl2 := handshake(t, s)
	b := expectAssigned(t, ctrl2, control.Register{Ref: 1, Kind: control.KindTCP, RemotePort: a.Port, Lease: a.Lease})
	if b.Port != a.Port {
		t.Fatalf("lease reclaimed port %d, want %d", b.Port, a.Port)
	}
	ep, _ := s.reg.port(a.Port)
	if ep.size() != 1 || ep.pick().id != b.Tunnel {
		t.Fatalf("the port routes to %d members, want only the new session's tunnel", ep.size())
	}
}

func TestTakeoverTellsTheHolder(t *testing.T) {
	s := startServer(t, nil)
	oldSess, oldCtrl := handshake(t, s)
	expectAssigned(t, oldCtrl, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "stuck"})
	_, ctrl := handshake(t, s)
	expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "stuck", Takeover: true})
	ce := expectError(t, oldCtrl, control.CodeTakenOver)
	if ce.Ref != 0 || !strings.Contains(ce.Message, "taken over") {
		t.Fatalf("the replaced agent was told %+v", ce)
	}
	select {
	case <-oldSess.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the replaced session is still open")
	}
}

func TestTakeoverNeedsTheSameOwner(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Tokens = []string{"T", "U"} })
	_, ctrl := agentAs(t, s, "T")
	expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "mine"})
	_, u := agentAs(t, s, "U")
	expectRefused(t, u, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "mine", Takeover: true}, control.CodeNameTaken, "held by a live agent")
}

// answerHTTP serves HTTP on every stream of sess, answering with who.
func answerHTTP(t *testing.T, sess *mux.Session, who string) {
	ln := &sessListener{sess: sess}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, who) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// sessListener hands out the streams the edge opens, header skipped.
type sessListener struct{ sess *mux.Session }

func (l *sessListener) Accept() (net.Conn, error) {
	st, err := l.sess.AcceptStream(context.Background())
	if err != nil {
		return nil, err
	}
	if _, err := control.ReadHeader(st); err != nil {
		st.Reset()
		return nil, err
	}
	return st, nil
}
func (l *sessListener) Close() error   { return l.sess.Close() }
func (l *sessListener) Addr() net.Addr { return &net.TCPAddr{} }

func TestPooledAgentsShareRequests(t *testing.T) {
	s := startServer(t, nil)
	sessA, ctrlA := handshake(t, s)
	expectAssigned(t, ctrlA, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "pool", Pool: true})
	sessB, ctrlB := handshake(t, s)
	expectAssigned(t, ctrlB, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "pool", Pool: true})
	answerHTTP(t, sessA, "A")
	answerHTTP(t, sessB, "B")
	seen := map[string]int{}
	for range 20 {
		// A fresh connection each time so the edge picks again.
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		req, _ := http.NewRequest("GET", "http://"+s.HTTPAddr().String()+"/", nil)
		req.Host = "pool.localhost"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen[string(b)]++
	}
	if seen["A"] == 0 || seen["B"] == 0 || seen["A"]+seen["B"] != 20 {
		t.Fatalf("20 requests to a pool of two went %v", seen)
	}
	// The name stays up while one member is connected.
	waitGone(t, s, sessA)
	if ep, ok := s.reg.host("pool.localhost"); !ok || ep.size() != 1 {
		t.Fatal("the pool went down with one of its two agents")
	}
}

func TestPoolNeedsBothToAsk(t *testing.T) {
	s := startServer(t, nil)
	_, ctrlA := handshake(t, s)
	expectAssigned(t, ctrlA, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "solo"})
	_, ctrlB := handshake(t, s)
	expectRefused(t, ctrlB, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "solo", Pool: true}, control.CodeNameTaken, "held by a live agent")
}

func TestLeasesSurviveAnEdgeRestart(t *testing.T) {
	dir := t.TempDir()
	port := freeTCPPort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := func(c *Config) { c.Listen, c.StateDir = listen, dir }

	e1 := edgetest.Start(t, New, Config{Listen: listen, HTTP: "127.0.0.1:0", Domain: "localhost", Tokens: []string{"T"}, StateDir: dir})
	_, ctrl := handshake(t, e1.S)
	h := expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindHTTP})
	p := expectAssigned(t, ctrl, control.Register{Ref: 2, Kind: control.KindTCP})
	if err := e1.Stop(); err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, cfg)
	if n := s2.reg.leaseCount(); n != 2 {
		t.Fatalf("the restarted edge loaded %d leases, want 2", n)
	}
	_, ctrl2 := handshake(t, s2)
	h2 := expectAssigned(t, ctrl2, control.Register{Ref: 1, Kind: control.KindHTTP, Name: h.Name, Lease: h.Lease})
	p2 := expectAssigned(t, ctrl2, control.Register{Ref: 2, Kind: control.KindTCP, RemotePort: p.Port, Lease: p.Lease})
	if h2.Name != h.Name || p2.Port != p.Port {
		t.Fatalf("after the restart: %s and port %d, want %s and %d", h2.Name, p2.Port, h.Name, p.Port)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// BenchmarkRegister is one HTTP registration answered, with leases kept in
// memory and in a state directory (a durable write each).
func BenchmarkRegister(b *testing.B) {
	for _, mode := range []string{"memory", "statedir"} {
		b.Run(mode, func(b *testing.B) {
			cfg := Config{Listen: fmt.Sprintf("127.0.0.1:%d", freeTCPPortB(b)), HTTP: "127.0.0.1:0", Domain: "localhost", Tokens: []string{"T"},
				Limits: Limits{TunnelsPerSession: 1 << 30, TunnelsPerOwner: 1 << 30}}
			if mode == "statedir" {
				cfg.StateDir = b.TempDir()
			}
			s := edgetest.Start(b, New, cfg).S
			conn, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			sess, _ := mux.Client(conn, mux.DefaultConfig())
			defer sess.Close()
			ctrl, _ := sess.OpenStream(context.Background())
			control.WriteMessage(ctrl, control.Hello{Version: control.Version})
			control.WriteMessage(ctrl, control.Auth{Token: "T"})
			if _, err := control.ReadMessage(ctrl); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				control.WriteMessage(ctrl, control.Register{Ref: uint32(i + 1), Kind: control.KindHTTP, Name: fmt.Sprintf("n%d", i)})
				m, err := control.ReadMessage(ctrl)
				if _, ok := m.(control.Assigned); !ok || err != nil {
					b.Fatalf("%#v %v", m, err)
				}
			}
		})
	}
}

func freeTCPPortB(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestLeasesPerOwnerAreBounded: an agent restarted in a loop gets a new
// random name each time; past the owner's max_leases, each new lease evicts
// the owner's offline lease that went offline first, so one token cannot
// hoard the name space. Live leases stay.
func TestLeasesPerOwnerAreBounded(t *testing.T) {
	const max = 3
	s := startServer(t, func(c *Config) {
		c.Tokens = nil
		c.TokenRules = []TokenRule{{Token: "T", Owner: "loop", MaxLeases: max}, {Token: "U", Owner: "other"}}
	})
	_, otherCtrl := agentAs(t, s, "U")
	other := expectAssigned(t, otherCtrl, control.Register{Ref: 1, Kind: control.KindHTTP})
	live, liveCtrl := handshake(t, s)
	kept := expectAssigned(t, liveCtrl, control.Register{Ref: 1, Kind: control.KindHTTP})
	var names []string
	for range 6 {
		sess, ctrl := handshake(t, s)
		a := expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindHTTP})
		names = append(names, a.Hostname)
		waitGone(t, s, sess)
	}
	if n := s.reg.leaseCount(); n != max+1 {
		t.Fatalf("%d leases held, want %d: %d for the looping owner (one live), 1 for the other", n, max+1, max)
	}
	// The live lease and the two newest offline ones stay; older ones went.
	for _, h := range names[:4] {
		if s.reg.isReserved(h) {
			t.Errorf("%s, among the first to go offline, is still leased", h)
		}
	}
	for _, h := range names[4:] {
		if !s.reg.isReserved(h) {
			t.Errorf("%s, among the last to go offline, lost its lease", h)
		}
	}
	if _, ok := s.reg.host(kept.Hostname); !ok {
		t.Errorf("the live tunnel %s lost its route", kept.Hostname)
	}
	if _, ok := s.reg.host(other.Hostname); !ok {
		t.Errorf("another owner's tunnel %s lost its route", other.Hostname)
	}
	live.Close()
}
