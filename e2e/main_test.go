package e2e

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/edgetest"
	"github.com/sluicehq/sluice/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Pebble's validation authority runs one worker for the life of the
		// process; it is the test's ACME server, not sluice.
		goleak.IgnoreAnyFunction("github.com/letsencrypt/pebble/v2/va.VAImpl.processTasks"),
	)
}

const token = "e2e-token"

// startEdge runs an in-process edge on loopback until the test ends.
func startEdge(t *testing.T, mod func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.Config{Listen: edgetest.Loopback, HTTP: edgetest.Loopback, Domain: "localhost", Tokens: []string{token}, HandshakeTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	return edgetest.Start(t, server.New, cfg).S
}

// startAgent runs an agent with the given tunnels and returns once the edge
// assigned all of them.
func startAgent(t *testing.T, srv *server.Server, tunnels ...agent.Tunnel) []control.Assigned {
	t.Helper()
	return startAgentWith(t, agent.Config{Server: srv.Addr().String()}, tunnels...)
}

// startAgentWith is startAgent with more of the agent's config given.
func startAgentWith(t *testing.T, cfg agent.Config, tunnels ...agent.Tunnel) []control.Assigned {
	t.Helper()
	as := edgetest.NewAssignments()
	cfg.Token, cfg.Tunnels, cfg.OnAssigned = token, tunnels, as.Hook
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	assigned, _ := edgetest.RunAgent(t, a, as, len(tunnels))
	return assigned
}

// localHTTP runs a local HTTP service on loopback and returns its host:port.
func localHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: h}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

// viaEdge is an HTTP client that sends every request, whatever its host, to
// addr: the edge's ingress, as DNS would for *.DOMAIN.
func viaEdge(t *testing.T, addr string) *http.Client {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		DisableCompression: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
