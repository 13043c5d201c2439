package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/edgetest"
	"github.com/sluicehq/sluice/mux"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startServer(t *testing.T, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{Listen: edgetest.Loopback, HTTP: edgetest.Loopback, Domain: "localhost", Tokens: []string{"T"}, HandshakeTimeout: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	return edgetest.Start(t, New, cfg).S
}

// rawAgent dials the edge and opens the control stream, speaking the control
// protocol by hand so tests can misbehave.
func rawAgent(t *testing.T, s *Server) (*mux.Session, *mux.Stream) {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sess, err := mux.Client(conn, mux.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	ctrl, err := sess.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctrl.SetDeadline(time.Now().Add(10 * time.Second))
	return sess, ctrl
}

func send(t *testing.T, w io.Writer, msgs ...control.Message) {
	t.Helper()
	for _, m := range msgs {
		if err := control.WriteMessage(w, m); err != nil {
			t.Fatal(err)
		}
	}
}

func expectError(t *testing.T, r io.Reader, code string) *control.Error {
	t.Helper()
	m, err := control.ReadMessage(r)
	if err != nil {
		t.Fatalf("want an error %q, got read error %v", code, err)
	}
	ce, ok := m.(*control.Error)
	if !ok || ce.Code != code {
		t.Fatalf("want error %q, got %#v", code, m)
	}
	return ce
}

func TestHandshakeRefusals(t *testing.T) {
	s := startServer(t, nil)
	cases := []struct {
		name string
		msgs []control.Message
		code string
		text string
	}{
		{"version", []control.Message{control.Hello{Version: 99}}, control.CodeVersion, "v99"},
		{"auth first", []control.Message{control.Auth{Token: "T"}}, control.CodeBadRequest, "hello"},
		{"wrong token", []control.Message{control.Hello{Version: control.Version}, control.Auth{Token: "x"}}, control.CodeUnauthorized, "token"},
		{"register before auth", []control.Message{control.Hello{Version: control.Version}, control.Register{Ref: 1, Kind: control.KindHTTP}}, control.CodeBadRequest, "auth"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sess, ctrl := rawAgent(t, s)
			send(t, ctrl, tc.msgs...)
			ce := expectError(t, ctrl, tc.code)
			if !strings.Contains(ce.Message, tc.text) {
				t.Fatalf("message %q does not mention %q", ce.Message, tc.text)
			}
			ctrl.CloseWrite() // what the agent does after reading a refusal
			// The edge then ends the session.
			select {
			case <-sess.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("session still open 5 s after a refused handshake")
			}
		})
	}
}

func TestGarbageOnControlStreamEndsSession(t *testing.T) {
	s := startServer(t, nil)
	sess, ctrl := rawAgent(t, s)
	ctrl.Write([]byte{0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'})
	select {
	case <-sess.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the edge kept a session whose control stream carried garbage")
	}
	if st := s.Stats(); st.Sessions != 0 {
		t.Fatalf("%d sessions registered", st.Sessions)
	}
}

func TestSilentAgentTimesOut(t *testing.T) {
	s := startServer(t, func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	sess, _ := rawAgent(t, s)
	select {
	case <-sess.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("an agent that never said hello kept its session")
	}
}

func handshake(t *testing.T, s *Server) (*mux.Session, *mux.Stream) {
	sess, ctrl := rawAgent(t, s)
	send(t, ctrl, control.Hello{Version: control.Version}, control.Auth{Token: "T"})
	m, err := control.ReadMessage(ctrl)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(control.Welcome); !ok {
		t.Fatalf("want welcome, got %#v", m)
	}
	return sess, ctrl
}

func TestRegisterValidation(t *testing.T) {
	s := startServer(t, func(c *Config) { c.TCPPortMin, c.TCPPortMax = 40000, 40010 })
	_, ctrl := handshake(t, s)
	cases := []struct {
		reg  control.Register
		code string
	}{
		{control.Register{Ref: 1, Kind: "sctp"}, control.CodeBadRequest},
		{control.Register{Ref: 2, Kind: control.KindHTTP, Name: "bad_name"}, control.CodeBadRequest},
		{control.Register{Ref: 3, Kind: control.KindHTTP, Hostname: "a..b"}, control.CodeBadRequest},
		{control.Register{Ref: 7, Kind: control.KindHTTP, Hostname: "LOCALHOST"}, control.CodeBadRequest},
		{control.Register{Ref: 4, Kind: control.KindTCP, RemotePort: 70000}, control.CodeBadRequest},
		{control.Register{Ref: 5, Kind: control.KindTCP, RemotePort: 39999}, control.CodeBadRequest},
	}
	for _, tc := range cases {
		send(t, ctrl, tc.reg)
		if ce := expectError(t, ctrl, tc.code); ce.Ref != tc.reg.Ref {
			t.Fatalf("error answers ref %d, want %d", ce.Ref, tc.reg.Ref)
		}
	}
	// A port from the range, chosen by the edge.
	send(t, ctrl, control.Register{Ref: 6, Kind: control.KindTCP})
	m, err := control.ReadMessage(ctrl)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := m.(control.Assigned)
	if !ok || a.Port < 40000 || a.Port > 40010 || a.Ref != 6 {
		t.Fatalf("want a port in 40000-40010 for ref 6, got %#v", m)
	}
}

func TestHTTPOnlyWhenConfigured(t *testing.T) {
	s := startServer(t, func(c *Config) { c.HTTP = "" })
	_, ctrl := handshake(t, s)
	send(t, ctrl, control.Register{Ref: 1, Kind: control.KindHTTP})
	if ce := expectError(t, ctrl, control.CodeBadRequest); !strings.Contains(ce.Message, "no HTTP ingress") {
		t.Fatalf("message %q does not say how to enable HTTP", ce.Message)
	}
}

func TestExtraAgentStreamsAreReset(t *testing.T) {
	s := startServer(t, nil)
	sess, _ := handshake(t, s)
	st, err := sess.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("x"))
	st.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = st.Read(make([]byte, 1))
	if !errors.Is(err, mux.ErrStreamReset) {
		t.Fatalf("a second agent-opened stream: read %v, want a reset", err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{Tokens: []string{"T"}},
		{Listen: "127.0.0.1:0"},
		{Listen: "127.0.0.1:0", Tokens: []string{""}},
		{Listen: "127.0.0.1:0", Tokens: []string{"T"}, HTTP: "127.0.0.1:0"},
		{Listen: "127.0.0.1:0", Tokens: []string{"T"}, TCPPortMin: 10, TCPPortMax: 5},
	} {
		if s, err := New(cfg); err == nil {
			s.ctrlLn.Close()
			t.Errorf("New(%+v) accepted an invalid config", cfg)
		}
	}
}

func TestHealthz(t *testing.T) {
	s := startServer(t, nil)
	for host, path := range map[string]string{"x.localhost": HealthPath, "localhost": "/healthz"} {
		req, _ := http.NewRequest("GET", "http://"+s.HTTPAddr().String()+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok\n" {
			t.Fatalf("%s%s: %d %q", host, path, resp.StatusCode, body)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestHealthzSaysDraining: while the edge drains, its health check answers
// 503 so that a load balancer stops sending it new work.
func TestHealthzSaysDraining(t *testing.T) {
	s := startServer(t, nil)
	s.draining.Store(true)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "http://x.localhost"+HealthPath, nil)
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != "draining\n" {
		t.Fatalf("health while draining: %d %q, want 503 \"draining\"", rec.Code, rec.Body.String())
	}
}
