package server

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
)

// agentGoroutines counts the goroutines running this package's code for
// agents: not the test's, nor the loops Serve starts whatever the agents.
func agentGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		running, creator, _ := strings.Cut(g, "\ncreated by ")
		switch {
		case !strings.Contains(running, "sluice/server."):
		case creator == "", // the test binary's main goroutine
			strings.HasPrefix(creator, "testing."),
			strings.HasPrefix(creator, "github.com/sluicehq/sluice/internal/edgetest.Start"),
			strings.HasPrefix(creator, "github.com/sluicehq/sluice/server.(*Server).Serve "):
		default:
			n++
		}
	}
	return n
}

// An idle agent session with one TCP tunnel costs the edge's own code one
// goroutine, the tunnel's accept loop: none waits on the control stream
// while the agent sends nothing, and each message still gets its answer.
func TestIdleSessionHoldsNoControlGoroutine(t *testing.T) {
	s := startServer(t, func(c *Config) { c.TCPPortMin, c.TCPPortMax = 40020, 40030 })
	_, ctrl := handshake(t, s)
	for ref := uint32(1); ref <= 2; ref++ {
		send(t, ctrl, control.Register{Ref: ref, Kind: control.KindTCP})
		m, err := control.ReadMessage(ctrl)
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := m.(control.Assigned); !ok || a.Ref != ref {
			t.Fatalf("want assigned %d, got %#v", ref, m)
		}
		want := int(ref) // an accept loop per tunnel
		deadline := time.Now().Add(5 * time.Second)
		for agentGoroutines() != want {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines run the edge's code with %d idle tunnels, want %d:\n%s", agentGoroutines(), ref, want, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// Messages sent back to back, in one write, are each answered, in order.
func TestRegistersSentTogetherAreAllAnswered(t *testing.T) {
	s := startServer(t, func(c *Config) { c.TCPPortMin, c.TCPPortMax = 40040, 40050 })
	_, ctrl := handshake(t, s)
	var batch strings.Builder
	for ref := uint32(1); ref <= 3; ref++ {
		send(t, &batch, control.Register{Ref: ref, Kind: control.KindTCP})
	}
	if _, err := ctrl.Write([]byte(batch.String())); err != nil {
		t.Fatal(err)
	}
	for ref := uint32(1); ref <= 3; ref++ {
		m, err := control.ReadMessage(ctrl)
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := m.(control.Assigned); !ok || a.Ref != ref {
			t.Fatalf("want assigned %d, got %#v", ref, m)
		}
	}
}

// The agent closing its control stream ends the session on the edge: its
// tunnels go and it is no longer counted.
func TestClosedControlStreamEndsSession(t *testing.T) {
	s := startServer(t, func(c *Config) { c.TCPPortMin, c.TCPPortMax = 40060, 40070 })
	sess, ctrl := handshake(t, s)
	send(t, ctrl, control.Register{Ref: 1, Kind: control.KindTCP})
	if _, err := control.ReadMessage(ctrl); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Sessions != 1 {
		t.Fatalf("%d sessions registered, want 1", st.Sessions)
	}
	ctrl.CloseWrite()
	select {
	case <-sess.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session still open 5 s after the agent closed its control stream")
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Sessions != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still registered after the agent left", s.Stats().Sessions)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
