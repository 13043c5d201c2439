package agent

import (
	"github.com/sluicehq/sluice/internal/testutil"

	"io"
	"net"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
)

// TestGracefulShutdownDrains: after the agent is told to stop, a connection
// in flight keeps working until it ends, new connections are turned away,
// and Run returns nil.
func TestGracefulShutdownDrains(t *testing.T) {
	e := startEdge(t, nil)
	local := testutil.EchoServer(t)
	as, stop := runAgent(t, e, func(c *Config) { c.ShutdownTimeout = 10 * time.Second }, Tunnel{Kind: control.KindTCP, Local: local})
	addr := tcpAddrOf(t, as[0].URL)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	roundTrip := func(msg string) {
		t.Helper()
		io.WriteString(c, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q: got %q, %v", msg, buf, err)
		}
	}
	roundTrip("before")

	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()

	// New connections are refused once the edge has the GOAWAY.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := net.Dial("tcp", addr)
		if err != nil {
			break // the tunnel's listener is already gone: also a refusal
		}
		n.SetDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(n, "x")
		_, rerr := io.ReadFull(n, make([]byte, 1))
		n.Close()
		if rerr != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new connections were still served 5 s after shutdown began")
		}
		time.Sleep(20 * time.Millisecond)
	}

	select {
	case <-stopped:
		t.Fatal("Run returned while a connection was still in flight")
	default:
	}
	roundTrip("during shutdown")
	c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Fatalf("end of the drained connection: %q, %v; want a clean EOF", rest, err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the last connection ended")
	}
}
