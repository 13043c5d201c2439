package agent

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/server"
)

// dnsService is a DNS-style local UDP service: each request gets one reply
// of the same size, every byte inverted, sent to the request's source. It
// records the sources it saw.
type dnsService struct {
	pc      *net.UDPConn
	mu      sync.Mutex
	sources map[netip.AddrPort]int
}

func startDNSService(t testing.TB) *dnsService {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	pc.SetReadBuffer(4 << 20)
	d := &dnsService{pc: pc, sources: map[netip.AddrPort]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, src, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			d.mu.Lock()
			d.sources[src]++
			d.mu.Unlock()
			for i := range buf[:n] {
				buf[i] ^= 0xff
			}
			pc.WriteToUDPAddrPort(buf[:n], src)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return d
}

func (d *dnsService) numSources() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.sources)
}

func udpAddrOf(t testing.TB, url string) *net.UDPAddr {
	t.Helper()
	hostport, ok := strings.CutPrefix(url, "udp://")
	if !ok {
		t.Fatalf("URL %q is not udp://", url)
	}
	a, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// exchange sends req and waits for one reply, resending a few times: UDP
// may drop a datagram anywhere, so a client retries, as DNS clients do.
func exchange(c *net.UDPConn, req []byte) ([]byte, error) {
	buf := make([]byte, 65536)
	for attempt := 0; attempt < 5; attempt++ {
		if _, err := c.Write(req); err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, errors.New("no reply after 5 attempts")
}

// TestUDPRequestResponseManySources sends DNS-style requests from many
// public sources through a real edge and agent: every reply reaches the
// source that asked, with the request's exact size (1 B, 1400 B and
// nearly 64 KiB: boundaries kept, nothing re-chunked), and the local service
// sees one source per public client.
func TestUDPRequestResponseManySources(t *testing.T) {
	svc := startDNSService(t)
	e := startEdge(t, nil)
	as, _ := runAgent(t, e, nil, Tunnel{Kind: control.KindUDP, Local: svc.pc.LocalAddr().String()})
	pub := udpAddrOf(t, as[0].URL)

	const clients = 16
	sizes := []int{1, 1400, 65000, 1, 512}
	var wg sync.WaitGroup
	for id := 0; id < clients; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialUDP("udp", nil, pub)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetReadBuffer(1 << 20)
			for _, size := range sizes {
				req := make([]byte, size)
				for i := range req {
					req[i] = byte(id + i) // a pattern only this client sends
				}
				reply, err := exchange(c, req)
				if err != nil {
					t.Errorf("client %d, %d bytes: %v", id, size, err)
					return
				}
				if len(reply) != size {
					t.Errorf("client %d: sent %d bytes, reply has %d: datagram boundary lost", id, size, len(reply))
					return
				}
				for i := range reply {
					if reply[i] != ^byte(id+i) {
						t.Errorf("client %d, %d bytes: byte %d is %#x, want %#x: another source's reply, or corrupted", id, size, i, reply[i], ^byte(id+i))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := svc.numSources(); n != clients {
		t.Fatalf("local service saw %d sources, want one per public client (%d)", n, clients)
	}
	if st := e.srv.UDPStats(); st.Flows != clients {
		t.Fatalf("edge has %d flows, want %d", st.Flows, clients)
	}
}

// TestUDPFlowExpiresWhenIdle: a flow with no datagram for the idle timeout
// is closed on both ends, and the same source starts a new one afterwards.
func TestUDPFlowExpiresWhenIdle(t *testing.T) {
	svc := startDNSService(t)
	e := startEdge(t, func(c *server.Config) { c.UDPIdleTimeout = 300 * time.Millisecond })
	as, _ := runAgent(t, e, nil, Tunnel{Kind: control.KindUDP, Local: svc.pc.LocalAddr().String()})
	c, err := net.DialUDP("udp", nil, udpAddrOf(t, as[0].URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := exchange(c, []byte("q1")); err != nil {
		t.Fatal(err)
	}
	// The flow may already be gone on a slow machine: count what the local
	// service saw, not the flows of this moment.
	before := svc.numSources()
	// Wait for the expiry itself, not for a guessed duration.
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.UDPStats().Flows != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle flow still exists 10 s after a 300 ms idle timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The agent's end went with it: its stream closed.
	for e.srv.Stats().Streams > 1 { // the control stream stays
		if time.Now().After(deadline) {
			t.Fatalf("%d streams still open after the flow expired", e.srv.Stats().Streams)
		}
		time.Sleep(10 * time.Millisecond)
	}
	reply, err := exchange(c, []byte("q2"))
	if err != nil || !bytes.Equal(reply, []byte{^byte('q'), ^byte('2')}) {
		t.Fatalf("after expiry: reply %q, %v", reply, err)
	}
	if n := svc.numSources(); n != before+1 {
		t.Fatalf("local service saw %d sources after the expiry, want %d: a new flow gets a new local socket", n, before+1)
	}
}

// TestUDPOverIPv6: flows keyed by IPv6 sources get their replies.
func TestUDPOverIPv6(t *testing.T) {
	needIPv6(t)
	svc := startDNSService(t)
	e := startEdge(t, func(c *server.Config) { c.TCPHost = "::1" })
	as, _ := runAgent(t, e, nil, Tunnel{Kind: control.KindUDP, Local: svc.pc.LocalAddr().String()})
	pub := udpAddrOf(t, as[0].URL)
	if pub.IP.To4() != nil {
		t.Fatalf("tunnel URL %s is not on ::1", as[0].URL)
	}
	for i := 0; i < 3; i++ {
		c, err := net.DialUDP("udp", nil, pub)
		if err != nil {
			t.Fatal(err)
		}
		reply, err := exchange(c, []byte{byte(i)})
		c.Close()
		if err != nil || len(reply) != 1 || reply[0] != ^byte(i) {
			t.Fatalf("client %d: reply %v, %v", i, reply, err)
		}
	}
}

// TestUDPFlowsDoNotHoldUpShutdown: UDP flows have nothing in flight, so an
// agent stopping with flows open does not wait out its shutdown timeout.
func TestUDPFlowsDoNotHoldUpShutdown(t *testing.T) {
	svc := startDNSService(t)
	e := startEdge(t, nil)
	as, stop := runAgent(t, e, func(c *Config) { c.ShutdownTimeout = time.Minute }, Tunnel{Kind: control.KindUDP, Local: svc.pc.LocalAddr().String()})
	c, err := net.DialUDP("udp", nil, udpAddrOf(t, as[0].URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := exchange(c, []byte("q")); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the agent waited on an open UDP flow as if it were a connection in flight (shutdown timeout 1 minute)")
	}
}

// needIPv6 skips a test on a machine without an IPv6 loopback.
func needIPv6(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	ln.Close()
}

// TestUDPTunnelKeepsItsPortAcrossReconnect: the agent loses the edge, comes
// back and takes over its UDP port while the edge still holds the old
// session's socket; datagrams flow again on the same port.
func TestUDPTunnelKeepsItsPortAcrossReconnect(t *testing.T) {
	svc := startDNSService(t)
	e := startEdge(t, nil)
	probe, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	proxy := newKillProxy(t, e.srv.Addr().String())
	assigned := make(chan control.Assigned, 4)
	runAgent(t, e, func(c *Config) {
		c.Server = proxy.addr()
		everyAssignment(c, assigned)
	}, Tunnel{Kind: control.KindUDP, Local: svc.pc.LocalAddr().String(), RemotePort: port})
	first := <-assigned
	c, err := net.DialUDP("udp", nil, udpAddrOf(t, first.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := exchange(c, []byte("before")); err != nil {
		t.Fatal(err)
	}
	proxy.kill()
	expectSameURL(t, assigned, first, 10*time.Second)
	reply, err := exchange(c, []byte("after"))
	if err != nil || len(reply) != 5 || reply[0] != ^byte('a') {
		t.Fatalf("after reconnect: reply %q, %v", reply, err)
	}
}

// TestUDPRandomPortComesBackAfterAnEdgeRestart: a UDP port the edge chose
// is a lease kept in the edge's state directory, so after the edge restarts
// the agent gets the same port back and datagrams flow again.
func TestUDPRandomPortComesBackAfterAnEdgeRestart(t *testing.T) {
	svc := startDNSService(t)
	ctrlAddr, dir := testutil.FreeAddr(t), t.TempDir()
	fixed := func(c *server.Config) { c.Listen, c.StateDir = ctrlAddr, dir }
	e1 := startEdge(t, fixed)
	assigned := make(chan control.Assigned, 4)
	runAgent(t, e1, func(c *Config) {
		everyAssignment(c, assigned)
	}, Tunnel{Kind: control.KindUDP, Local: svc.pc.LocalAddr().String()})
	first := <-assigned
	e1.stop()

	startEdge(t, fixed)
	expectSameURL(t, assigned, first, 15*time.Second)
	c, err := net.DialUDP("udp", nil, udpAddrOf(t, first.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if reply, err := exchange(c, []byte("again")); err != nil || len(reply) != 5 {
		t.Fatalf("after the restart: reply %q, %v", reply, err)
	}
}
