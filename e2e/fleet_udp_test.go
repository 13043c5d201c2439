package e2e

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/edgetest"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/server"
)

// udpEchoService answers each datagram with "echo " and the datagram, and
// counts what it received.
func udpEchoService(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var got atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			got.Add(1)
			pc.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	return pc.LocalAddr().String(), &got
}

// udpAsk sends msg to addr from the local address from (nil: any) until
// the echo comes back or the deadline passes: the edges open their mirror
// of the port once their watch has seen the lease.
func udpAsk(from *net.UDPAddr, addr, msg string, wait time.Duration) error {
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	c, err := net.DialUDP("udp", from, to)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(wait)
	buf := make([]byte, 2048)
	for time.Now().Before(deadline) {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			continue // not open yet, or refused (ICMP): send again
		}
		if string(buf[:n]) != "echo "+msg {
			return fmt.Errorf("answer %q to %q", buf[:n], msg)
		}
		return nil
	}
	return fmt.Errorf("no echo of %q from %s within %v", msg, addr, wait)
}

// Every edge opens a UDP port leased in the fleet; datagrams that land on
// an edge without the agent's session are forwarded as flows over a link
// to the edge that has one, and the replies come back to the client. The
// edges listen on three loopback addresses, as three hosts would.
func TestFleetForwardsUDPFlowsToTheAgentsEdge(t *testing.T) {
	edges, _ := startFleetWithMetrics(t, 3, onOwnHosts)
	local, got := udpEchoService(t)
	as := startAgentOnOneEdge(t, edges[0], agent.Tunnel{Kind: control.KindUDP, Local: local})
	port := strconv.Itoa(as[0].Port)
	for round := range 2 { // the second round reuses each client's flow
		for i := range edges {
			addr := "127.0.0." + strconv.Itoa(i+1) + ":" + port
			from := &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(10+i)), Port: 0}
			if err := udpAsk(from, addr, fmt.Sprintf("round %d via edge %d", round, i), 10*time.Second); err != nil {
				t.Fatalf("edge %d: %v", i, err)
			}
		}
	}
	if got.Load() < 6 {
		t.Fatalf("the local service saw %d datagrams, want at least 6", got.Load())
	}
	home := edges[0].Status().Fleet
	in := uint64(0)
	for _, n := range home.StreamsIn {
		in += n
	}
	if in < 2 {
		t.Fatalf("edge 0 took %v forwarded flows, want at least one from each other edge", home.StreamsIn)
	}
}

// The tunnel's policy decides on the client's own address when its flow
// was forwarded: a client the policy allows is served through every edge,
// one it refuses through none, and the refusals are counted.
func TestFleetUDPPolicyUsesTheClientsAddress(t *testing.T) {
	edges, regs := startFleetWithMetrics(t, 3, onOwnHosts)
	local, got := udpEchoService(t)
	as := startAgentOnOneEdge(t, edges[0], agent.Tunnel{Kind: control.KindUDP, Local: local,
		Policy: mustSpec(t, policy.Simple{AllowCIDRs: []string{"127.0.0.20/32"}})})
	port := strconv.Itoa(as[0].Port)
	allowed := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 20)}
	for i := range edges {
		if err := udpAsk(allowed, "127.0.0."+strconv.Itoa(i+1)+":"+port, "allowed via edge "+strconv.Itoa(i), 10*time.Second); err != nil {
			t.Fatalf("edge %d: %v", i, err)
		}
	}
	before := got.Load()
	// Edge 0 decides for the clients the other edges forward too: each
	// refused client adds to its count.
	for _, i := range []int{1, 2, 0} {
		refusals := counter(t, regs[0], "sluice_edge_policy_refused_total", "kind", "udp")
		refused := &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(30+i))}
		if err := udpAsk(refused, "127.0.0."+strconv.Itoa(i+1)+":"+port, "refused", time.Second); err == nil {
			t.Fatalf("edge %d served a client the policy refuses", i)
		}
		if n := counter(t, regs[0], "sluice_edge_policy_refused_total", "kind", "udp"); n <= refusals {
			t.Fatalf("a client refused through edge %d was not counted on edge 0 (%v before, %v after)", i, refusals, n)
		}
		// The edge where the datagrams landed counts what it dropped.
		if n := counter(t, regs[i], "sluice_edge_udp_datagrams_dropped_total", "reason", "policy"); n < 1 {
			t.Fatalf("edge %d counted %v datagrams dropped by policy, want at least 1", i, n)
		}
	}
	if n := got.Load(); n != before {
		t.Fatalf("the local service saw %d datagrams from refused clients", n-before)
	}
}

// startAgentOnOneEdge is startAgent with one session: the tunnel is served
// by that edge alone, and traffic landing elsewhere is forwarded to it.
func startAgentOnOneEdge(t *testing.T, srv *server.Server, tunnels ...agent.Tunnel) []control.Assigned {
	t.Helper()
	as := edgetest.NewAssignments()
	a, err := agent.New(agent.Config{Server: srv.Addr().String(), Token: token, Sessions: 1, Tunnels: tunnels, OnAssigned: as.Hook})
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	assigned, _ := edgetest.RunAgent(t, a, as, len(tunnels))
	return assigned
}
