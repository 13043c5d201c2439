package agent

import (
	"github.com/sluicehq/sluice/internal/edgetest"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/mux"

	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testToken = "test-token"

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return nil
}

// edge is an in-process edge for a test.
type edge struct {
	srv *server.Server
	e   *edgetest.Edge[*server.Server]
}

func startEdge(t testing.TB, mod func(*server.Config)) *edge {
	t.Helper()
	cfg := server.Config{
		Listen: edgetest.Loopback, HTTP: edgetest.Loopback, Domain: "localhost",
		Tokens: []string{testToken, "other-token"}, Logger: testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	e := edgetest.Start(t, server.New, cfg)
	return &edge{srv: e.S, e: e}
}

func (e *edge) stop() { e.e.Stop() }

// runAgent starts an agent and waits until all its tunnels are assigned.
func runAgent(t testing.TB, e *edge, mod func(*Config), tunnels ...Tunnel) (assigned []control.Assigned, stop func()) {
	t.Helper()
	as := edgetest.NewAssignments()
	cfg := Config{Server: e.srv.Addr().String(), Token: testToken, Tunnels: tunnels, Logger: testLogger(t), OnAssigned: as.Hook}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("new agent: %v", err)
	}
	return edgetest.RunAgent(t, a, as, len(tunnels))
}

func tcpAddrOf(t testing.TB, url string) string {
	t.Helper()
	if !strings.HasPrefix(url, "tcp://") {
		t.Fatalf("tunnel URL %q is not tcp://", url)
	}
	return strings.TrimPrefix(url, "tcp://")
}

func TestTCPEchoConcurrentClients(t *testing.T) {
	e := startEdge(t, nil)
	local := testutil.EchoServer(t)
	as, _ := runAgent(t, e, nil, Tunnel{Kind: control.KindTCP, Local: local})
	addr := tcpAddrOf(t, as[0].URL)

	const clients = 200
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			msg := make([]byte, 1024+i*97)
			rand.Read(msg)
			go func() {
				c.Write(msg)
				c.(*net.TCPConn).CloseWrite()
			}()
			back, err := io.ReadAll(c)
			if err != nil {
				errs <- fmt.Errorf("client %d: %v", i, err)
				return
			}
			if !bytes.Equal(back, msg) {
				errs <- fmt.Errorf("client %d: echoed %d bytes differ from the %d sent", i, len(back), len(msg))
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestWrongTokenIsRefused(t *testing.T) {
	e := startEdge(t, nil)
	a, err := New(Config{Server: e.srv.Addr().String(), Token: "nope", Tunnels: []Tunnel{{Kind: control.KindTCP, Local: "127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = a.Run(ctx)
	var ce *control.Error
	if !errors.As(err, &ce) || ce.Code != control.CodeUnauthorized {
		t.Fatalf("Run with a wrong token: got %v, want a control error %q", err, control.CodeUnauthorized)
	}
	if !strings.Contains(err.Error(), "token") {
		t.Fatalf("error %q does not say the token is the problem", err)
	}
	if st := e.srv.Stats(); st.Hostnames+st.Ports != 0 {
		t.Fatalf("a tunnel was registered despite the wrong token: %d hosts, %d ports", st.Hostnames, st.Ports)
	}
}

func TestTCPLocalServiceDownClosesCallers(t *testing.T) {
	e := startEdge(t, nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	var logged testutil.SyncBuffer
	as, _ := runAgent(t, e, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	}, Tunnel{Kind: control.KindTCP, Local: dead})
	addr := tcpAddrOf(t, as[0].URL)
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", addr)
		if errors.Is(err, syscall.ECONNRESET) {
			// The edge accepted and reset the connection before connect
			// returned: the caller's connection was closed, as wanted.
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(make([]byte, 1))
		c.Close()
		if n != 0 || err == nil || isTimeout(err) {
			t.Fatalf("caller %d: read %d bytes, %v; want the connection closed", i, n, err)
		}
	}
	if got := strings.Count(logged.String(), "local service unreachable"); got != 1 {
		t.Fatalf("%d log lines for a burst of 5 failures, want 1:\n%s", got, logged.String())
	}
}

// TestTunnelWindowGrowsOverLongLink: with 50 ms of round trip between agent
// and edge, a download through a TCP tunnel grows the edge's stream window
// past the initial one, which alone would cap the tunnel at 256 KiB per
// round trip (5 MB/s here). The relay's stream-to-socket path is the one a
// tunnel uses, so this is the path users' bytes take.
func TestTunnelWindowGrowsOverLongLink(t *testing.T) {
	e := startEdge(t, nil)
	link := testutil.DelayProxy(t, e.srv.Addr().String(), 25*time.Millisecond)
	const total = 24 << 20
	release := make(chan struct{})
	local := testutil.Serve(t, func(c net.Conn) {
		io.Copy(c, io.LimitReader(testutil.RandReader(3), total))
		select { // hold the stream open until the client has looked at the window
		case <-release:
		case <-time.After(30 * time.Second):
		}
	})
	as, _ := runAgent(t, e, func(c *Config) { c.Server = link }, Tunnel{Kind: control.KindTCP, Local: local})
	c, err := net.Dial("tcp", tcpAddrOf(t, as[0].URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	if n, err := io.CopyN(io.Discard, c, total); err != nil {
		t.Fatalf("downloaded %d of %d bytes: %v", n, total, err)
	}
	w := e.srv.Stats().LargestStreamWindow
	close(release)
	initial := int64(mux.DefaultConfig().InitialStreamWindow)
	t.Logf("edge's largest stream window after %d MiB over a 50 ms round trip: %d KiB", total>>20, w>>10)
	if w <= initial {
		t.Fatalf("the tunnel's stream window stayed at %d bytes (initial %d): auto-tuning did not grow it on the tunnel's path", w, initial)
	}
}
