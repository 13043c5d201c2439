package server

import (
	"context"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/frame"
	"github.com/sluicehq/sluice/mux"
)

// udpAgent registers a UDP tunnel by hand and returns its session and the
// assigned port. Its receive windows are the protocol minimum, so a stalled
// reader backs the edge up quickly.
func udpAgent(t *testing.T, s *Server, r control.Register) (*mux.Session, control.Message) {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cfg := mux.DefaultConfig()
	cfg.InitialStreamWindow = frame.InitialStreamWindow
	cfg.MaxStreamWindow = cfg.InitialStreamWindow
	cfg.SessionWindow = 16 << 20
	sess, err := mux.Client(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	ctrl, err := sess.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctrl.SetDeadline(time.Now().Add(10 * time.Second))
	send(t, ctrl, control.Hello{Version: control.Version}, control.Auth{Token: "T"}, r)
	if m, err := control.ReadMessage(ctrl); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(control.Welcome); !ok {
		t.Fatalf("want welcome, got %#v", m)
	}
	m, err := control.ReadMessage(ctrl)
	if err != nil {
		t.Fatal(err)
	}
	ctrl.SetDeadline(time.Time{})
	return sess, m
}

func TestUDPRegisterRefusals(t *testing.T) {
	s := startServer(t, func(c *Config) { c.UDPPortMin, c.UDPPortMax = 40000, 40010 })
	cases := []struct {
		name string
		r    control.Register
		code string
	}{
		// Out of range is the agent's mistake, not a conflict another
		// agent's --takeover could resolve.
		{"port outside the range", control.Register{Ref: 1, Kind: control.KindUDP, RemotePort: 39999}, control.CodeBadRequest},
		{"port out of range", control.Register{Ref: 1, Kind: control.KindUDP, RemotePort: 70000}, control.CodeBadRequest},
		{"proxy protocol on udp", control.Register{Ref: 1, Kind: control.KindUDP, ProxyProtocol: "v2"}, control.CodeBadRequest},
		{"unknown proxy protocol version", control.Register{Ref: 1, Kind: control.KindTCP, ProxyProtocol: "v3"}, control.CodeBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, m := udpAgent(t, s, c.r)
			ce, ok := m.(*control.Error)
			if !ok || ce.Code != c.code {
				t.Fatalf("want error %q, got %#v", c.code, m)
			}
		})
	}
}

func TestUDPPortInRange(t *testing.T) {
	s := startServer(t, func(c *Config) { c.UDPPortMin, c.UDPPortMax = 41000, 41020 })
	_, m := udpAgent(t, s, control.Register{Ref: 1, Kind: control.KindUDP})
	a, ok := m.(control.Assigned)
	if !ok {
		t.Fatalf("want assigned, got %#v", m)
	}
	if a.Port < 41000 || a.Port > 41020 || a.URL != "udp://127.0.0.1:"+strconv.Itoa(a.Port) {
		t.Fatalf("assigned %+v, want a port in 41000-41020 and its udp:// URL", a)
	}
}

// TestUDPFloodIsBounded floods a tunnel whose agent never reads: the
// streams fill their windows, then the flow queues and the tunnel's byte
// budget fill, and from then on datagrams are dropped. Sources past the
// flow limit get no flow at all.
func TestUDPFloodIsBounded(t *testing.T) {
	const maxFlows, budget = 8, 256 << 10
	s := startServer(t, func(c *Config) {
		c.UDPMaxFlows, c.UDPFlowQueue, c.UDPQueueBytes = maxFlows, 64, budget
	})
	sess, m := udpAgent(t, s, control.Register{Ref: 1, Kind: control.KindUDP})
	a, ok := m.(control.Assigned)
	if !ok {
		t.Fatalf("want assigned, got %#v", m)
	}
	// Accept the flows' streams and read none of them until told to.
	var held sync.WaitGroup
	drain := make(chan struct{})
	held.Add(1)
	go func() {
		defer held.Done()
		for {
			st, err := sess.AcceptStream(context.Background())
			if err != nil {
				return
			}
			held.Add(1)
			go func() {
				defer held.Done()
				select {
				case <-drain:
					io.Copy(io.Discard, st)
				case <-sess.Done():
				}
			}()
		}
	}()
	t.Cleanup(func() { sess.Close(); held.Wait() })

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	const size = 1400
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: a.Port}
	payload := make([]byte, size)
	var conns []*net.UDPConn
	for i := 0; i < 3*maxFlows; i++ {
		c, err := net.DialUDP("udp", nil, dst)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// Flood from every source until the queues have hit the budget behind
	// streams that are out of credit (the agent holds their windows,
	// unread); then flood as much again. The budget must hold at every
	// point sampled.
	window := int64(mux.DefaultConfig().InitialStreamWindow)
	var sent, maxQueued int64
	var st UDPStats
	full := -1
	for round := 0; round < 2000 && (full < 0 || round < 2*full); round++ {
		for _, c := range conns {
			for k := 0; k < 8; k++ {
				c.Write(payload)
				sent += size
			}
		}
		st = s.UDPStats()
		maxQueued = max(maxQueued, st.QueuedBytes)
		if full < 0 && st.QueuedBytes > budget-2*size && sess.Stats().RecvBuffered >= window {
			full = round + 1
		}
	}
	st = s.UDPStats()
	if maxQueued > budget {
		t.Fatalf("queued up to %d bytes, over the %d byte budget", maxQueued, budget)
	}
	if full < 0 {
		t.Fatalf("the budget (%d) never filled behind a stalled stream, so nothing was backed up (%+v, agent holds %d bytes)", budget, st, sess.Stats().RecvBuffered)
	}
	if held := sess.Stats().RecvBuffered; held < window || held > maxFlows*window {
		t.Fatalf("the agent holds %d unread bytes: want at least one window (%d) and at most %d flows' windows", held, window, maxFlows)
	}
	if st.Flows != maxFlows {
		t.Fatalf("%d flows, want exactly the limit %d for %d sources", st.Flows, maxFlows, len(conns))
	}
	if st.Dropped == 0 {
		t.Fatal("no datagram dropped, yet the agent read nothing")
	}

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// What may stay: the budget, the unread stream windows the agent holds
	// (256 KiB each) and per-flow bookkeeping. An unbounded queue would keep
	// a good part of the flood instead.
	limit := int64(budget + maxFlows*(256<<10) + 4<<20)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > limit {
		t.Fatalf("heap grew by %d bytes after a %d byte flood, over the %d bound", grew, sent, limit)
	}
	// Once the agent reads, every queued byte goes out and the budget is
	// whole again: nothing was lost to the accounting.
	close(drain)
	deadline := time.Now().Add(10 * time.Second)
	for s.UDPStats().QueuedBytes != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still counted as queued 10 s after the agent began to read", s.UDPStats().QueuedBytes)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("flood of %d bytes: %d flows, %d bytes queued, %d datagrams dropped, heap %+d bytes", sent, st.Flows, st.QueuedBytes, st.Dropped, int64(after.HeapAlloc)-int64(before.HeapAlloc))
}
