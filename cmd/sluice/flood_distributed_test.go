package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

// silentFlood holds perSource silent connections to addr from each source
// address, reopening each as soon as the edge drops it, until ctx ends.
// It returns once every connection was opened once.
func silentFlood(ctx context.Context, t *testing.T, addr string, sources []netip.Addr, perSource int, opened *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	for _, src := range sources {
		for range perSource {
			wg.Add(1)
			ready.Add(1)
			go func() {
				defer wg.Done()
				first := true
				for ctx.Err() == nil {
					c, err := dialFrom(ctx, src.String(), addr)
					if first {
						first = false
						ready.Done()
					}
					if err != nil {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					opened.Add(1)
					stop := context.AfterFunc(ctx, func() { c.Close() })
					c.Read(make([]byte, 1)) // until the edge drops it
					stop()
					c.Close()
				}
			}()
		}
	}
	ready.Wait()
	return &wg
}

// timeRealAgent connects a real agent to addr and returns how long it took
// to get its tunnel, or fails the test after 10 s.
func timeRealAgent(t *testing.T, addr string) time.Duration {
	t.Helper()
	assigned := make(chan struct{}, 1)
	a, err := agent.New(agent.Config{Server: addr, Token: "T", FirstConnectTimeout: 10 * time.Second,
		Tunnels:    []agent.Tunnel{{Kind: control.KindTCP, Local: "127.0.0.1:9"}},
		OnAssigned: func(int, control.Assigned) { assigned <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	began := time.Now()
	go func() { ran <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-ran
	}()
	select {
	case <-assigned:
		return time.Since(began)
	case err := <-ran:
		t.Fatalf("the real agent gave up during the flood: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the real agent did not get in within 10 s during the flood")
	}
	return 0
}

// floodEdge runs an in-process edge listening on listen with the default
// limits, until the test ends.
func floodEdge(t *testing.T, listen string) *server.Server {
	srv, err := server.New(server.Config{Listen: listen, Tokens: []string{"T"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return srv
}

// distributedFlood floods the edge at addr with silent connections from
// many sources and checks that a real agent still gets in within a second.
func distributedFlood(t *testing.T, addr string, sources []netip.Addr, perSource int) {
	ctx, stop := context.WithCancel(context.Background())
	var opened atomic.Int64
	wg := silentFlood(ctx, t, addr, sources, perSource, &opened)
	defer func() {
		stop()
		wg.Wait()
	}()
	var worst time.Duration
	for range 3 {
		worst = max(worst, timeRealAgent(t, addr))
	}
	t.Logf("%d sources x %d silent connections (%d opened in all): a real agent got in within %v (worst of 3)", len(sources), perSource, opened.Load(), worst)
	if opened.Load() <= 1024 {
		t.Fatalf("the flood opened only %d connections, no more than the edge holds pending (1,024)", opened.Load())
	}
	// About a second on a quiet machine (the figure is in the log); the
	// bound leaves room for -race on a loaded one, and still fails an edge
	// that turns the agent away, which took 10 s and more.
	if worst > 5*time.Second {
		t.Errorf("a real agent took %v to get in during a flood from %d sources; want about a second", worst, len(sources))
	}
}

// TestDistributedFloodLeavesRoomForARealAgent: silent connections from
// many addresses, more in all than the edge holds pending (1,024), 64 of
// them in one /24 as in a flood from one network, do not keep a real agent
// out: it gets in within a second.
func TestDistributedFloodLeavesRoomForARealAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("a flood of 1,500 connections; skipped in -short mode")
	}
	srv := floodEdge(t, "127.0.0.1:0")
	var sources []netip.Addr
	for i := range 64 {
		sources = append(sources, netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)})) // one /24
	}
	for i := range 128 {
		sources = append(sources, netip.AddrFrom4([4]byte{127, 2, byte(i), 1})) // a /24 each
	}
	distributedFlood(t, srv.Addr().String(), sources, 8)
}

// TestDistributedIPv6FloodLeavesRoomForARealAgent does the same from IPv6
// sources in many /64s and /48s, in a network namespace of its own where a
// local route makes a whole prefix the test's to send from (root only).
func TestDistributedIPv6FloodLeavesRoomForARealAgent(t *testing.T) {
	if os.Getenv("SLUICE_TEST_IN_NETNS") == "1" {
		srv := floodEdge(t, "[::1]:0")
		var sources []netip.Addr
		for i := range 128 {
			sources = append(sources, netip.MustParseAddr(fmt.Sprintf("fd5c:0:%x::1", i))) // a /48 each
		}
		for i := range 64 {
			sources = append(sources, netip.MustParseAddr(fmt.Sprintf("fd5c:ffff:0:%x::1", i))) // one /48, a /64 each
		}
		distributedFlood(t, srv.Addr().String(), sources, 8)
		return
	}
	if testing.Short() {
		t.Skip("a flood of 1,500 connections; skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace (CI runs as root)")
	}
	ipCmd, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs iproute2's ip (CI installs it)")
	}
	ns := fmt.Sprintf("sluice-flood-%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipCmd, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { exec.Command(ipCmd, "netns", "del", ns).Run() })
	run("-n", ns, "link", "set", "lo", "up")
	run("-n", ns, "-6", "route", "add", "local", "fd5c::/32", "dev", "lo")
	// Sending from an address of a local route, not one on an interface.
	run("netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/ip_nonlocal_bind")
	cmd := exec.Command(ipCmd, "netns", "exec", ns, os.Args[0], "-test.run=^TestDistributedIPv6FloodLeavesRoomForARealAgent$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "SLUICE_TEST_IN_NETNS=1")
	out, err := cmd.CombinedOutput()
	t.Logf("inside %s:\n%s", ns, out)
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("the flood inside the namespace failed: %v", err)
	}
}
