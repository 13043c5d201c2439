package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/server"
)

const fleetSecret = "e2e-fleet-secret-0123456789abcdef"

// startFleet runs n in-process edges in one fleet with embedded stores,
// each given the same join list. The edges start together: each waits for
// a majority of the stores.
func startFleet(t *testing.T, n int) []*server.Server {
	srvs, _ := startFleetWithMetrics(t, n, nil)
	return srvs
}

func startFleetWithMetrics(t *testing.T, n int, mod func(int, *server.Config)) ([]*server.Server, []*prometheus.Registry) {
	e := startFleetEdges(t, n, mod)
	return e.srvs, e.regs
}

// onOwnHosts puts edge i's TCP and UDP tunnel ports on 127.0.0.(i+1), as
// edges on hosts of their own would have them, so a test can tell which
// edge a client reached.
func onOwnHosts(i int, c *server.Config) { c.TCPHost = "127.0.0." + strconv.Itoa(i+1) }

// fleetEdges are the edges of a test fleet; stop[i] ends edge i's Serve
// and waits for it.
type fleetEdges struct {
	srvs []*server.Server
	regs []*prometheus.Registry
	stop []func()
}

func startFleetEdges(t *testing.T, n int, mod func(int, *server.Config)) fleetEdges {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = testutil.FreePortPair(t)
	}
	e := fleetEdges{srvs: make([]*server.Server, n), regs: make([]*prometheus.Registry, n), stop: make([]func(), n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		e.regs[i] = prometheus.NewRegistry()
		cfg := server.Config{
			Metrics: e.regs[i],
			Listen:  "127.0.0.1:0", HTTP: "127.0.0.1:0", Domain: "localhost", Tokens: []string{token},
			HandshakeTimeout: 5 * time.Second, StateDir: t.TempDir(),
			FleetListen: addrs[i], FleetJoin: addrs, FleetSecret: fleetSecret,
		}
		if mod != nil {
			mod(i, &cfg)
		}
		go func() {
			defer wg.Done()
			e.srvs[i], errs[i] = server.New(cfg)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("edge %d: %v", i, err)
		}
	}
	for i, s := range e.srvs {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := s.Serve(ctx); err != nil {
				t.Errorf("Serve: %v", err)
			}
		}()
		e.stop[i] = func() {
			cancel()
			<-done
		}
	}
	t.Cleanup(func() {
		var all sync.WaitGroup
		for _, stop := range e.stop {
			all.Add(1)
			go func() {
				defer all.Done()
				stop()
			}()
		}
		all.Wait()
	})
	return e
}

// startFleetStoppable is startFleetWithMetrics with a function per edge
// that stops it and waits until it has.
func startFleetStoppable(t *testing.T, n int, mod func(int, *server.Config)) ([]*server.Server, []*prometheus.Registry, []func()) {
	t.Helper()
	e := startFleetEdges(t, n, mod)
	return e.srvs, e.regs, e.stop
}

// A request that lands on an edge with no session to the tunnel's agent is
// forwarded over a link to the edge that has one.
func TestFleetForwardsHTTPToTheAgentsEdge(t *testing.T) {
	edges, regs := startFleetWithMetrics(t, 3, nil)
	local := localHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app saw %s from %s", r.Host, r.Header.Get("X-Forwarded-For"))
	}))
	// One session: the other two edges have none to the agent.
	startAgentWith(t, agent.Config{Server: edges[0].Addr().String(), Sessions: 1}, agent.Tunnel{Kind: control.KindHTTP, Name: "app", Local: local})
	for i, e := range edges {
		c := viaEdge(t, e.HTTPAddr().String())
		var body string
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := c.Get("http://app.localhost/")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			// The other edges learn of the lease through their watch.
			if time.Now().After(deadline) {
				t.Fatalf("edge %d: %v %q", i, err, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if body != "app saw app.localhost from 127.0.0.1" {
			t.Fatalf("edge %d answered %q", i, body)
		}
	}

	// The fleet view: every edge sees three members and that edge 0 holds
	// the lease; edge 0 took the forwarded requests of the other two.
	home := edges[0].Status().Fleet
	if home == nil || len(home.Members) != 3 {
		t.Fatalf("edge 0's fleet view: %+v", home)
	}
	for i, e := range edges {
		v := e.Status().Fleet
		var holders []string
		for _, l := range v.Leases {
			if l.Key == "host:app.localhost" {
				holders = l.Holders
			}
		}
		if len(holders) != 1 || holders[0] != home.Edge {
			t.Fatalf("edge %d sees the lease held by %v, want [%s]", i, holders, home.Edge)
		}
		if i > 0 && v.ForwardedOut[home.Edge] < 1 {
			t.Fatalf("edge %d forwarded %v", i, v.ForwardedOut)
		}
	}
	in := uint64(0)
	for _, n := range home.ForwardedIn {
		in += n
	}
	if in < 2 {
		t.Fatalf("edge 0 took %v forwarded streams, want at least 2", home.ForwardedIn)
	}
	if !metricAtLeast(t, regs[1], "sluice_edge_fleet_forwarded_streams_total", 1) || !metricAtLeast(t, regs[0], "sluice_edge_fleet_members", 3) ||
		!metricAtLeast(t, regs[0], "sluice_edge_fleet_store_operations_total", 1) {
		t.Fatal("fleet metrics missing")
	}
}

// metricAtLeast reports whether some series of the named metric is at
// least min.
func metricAtLeast(t *testing.T, reg *prometheus.Registry, name string, min float64) bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			if v >= min {
				return true
			}
		}
	}
	t.Logf("%s: no series at %v or more", name, min)
	return false
}

// Two agents racing for one name on two edges: exactly one gets it, the
// other is refused as taken, every time.
func TestFleetNameRaceAcrossEdges(t *testing.T) {
	edges := startFleet(t, 3)
	local := localHTTP(t, http.NotFoundHandler())
	for r := range 8 {
		name := "race" + strconv.Itoa(r)
		var won, taken atomic.Int32
		var wg sync.WaitGroup
		for _, e := range []*server.Server{edges[r%3], edges[(r+1)%3]} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := agent.New(agent.Config{Server: e.Addr().String(), Token: token,
					Tunnels: []agent.Tunnel{{Kind: control.KindHTTP, Name: name, Local: local}}})
				if err != nil {
					t.Error(err)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
				defer cancel()
				err = a.Run(ctx)
				var ce *control.Error
				switch {
				case err == nil || errors.Is(err, context.DeadlineExceeded):
					won.Add(1)
				case errors.As(err, &ce) && ce.Code == control.CodeNameTaken:
					taken.Add(1) // the command line exits 5 on it
				default:
					t.Errorf("round %d: agent ended with %v", r, err)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 1 || taken.Load() != 1 {
			t.Fatalf("round %d: %d agents kept the name, %d were refused; want 1 and 1", r, won.Load(), taken.Load())
		}
	}
}

// Every edge listens on a TCP port leased in the fleet and forwards its
// connections to the edge with the agent. The edges listen for TCP tunnels
// on three loopback addresses, as three hosts would.
func TestFleetEveryEdgeServesLeasedTCPPorts(t *testing.T) {
	edges, _ := startFleetWithMetrics(t, 3, onOwnHosts)
	echo := testutil.EchoServer(t)
	as := startAgentWith(t, agent.Config{Server: edges[0].Addr().String(), Sessions: 1}, agent.Tunnel{Kind: control.KindTCP, Local: echo})
	port := strconv.Itoa(as[0].Port)
	for i := range edges {
		addr := "127.0.0." + strconv.Itoa(i+1) + ":" + port
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := echoOnce(addr, "hello via edge "+strconv.Itoa(i))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("edge %d (%s): %v", i, addr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func echoOnce(addr, msg string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo: %q", got)
	}
	return nil
}

// An agent given one edge's address learns the fleet's other edges from
// it and keeps a session to a second edge, where it registers the same
// tunnel under the same lease: the fleet's record lists both edges as
// holders, and both serve the tunnel from their own session.
func TestFleetAgentHoldsSessionsOnTwoEdges(t *testing.T) {
	edges := startFleet(t, 3)
	local := localHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "two edges")
	}))
	startAgent(t, edges[0], agent.Tunnel{Kind: control.KindHTTP, Name: "twice", Local: local})
	var holders []string
	deadline := time.Now().Add(10 * time.Second)
	for len(holders) < agent.DefaultSessions {
		for _, l := range edges[0].Status().Fleet.Leases {
			if l.Key == "host:twice.localhost" {
				holders = l.Holders
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease is held by %v after 10 s, want %d edges", holders, agent.DefaultSessions)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(holders) != agent.DefaultSessions {
		t.Fatalf("the lease is held by %v, want %d edges", holders, agent.DefaultSessions)
	}
	// Each holder serves the tunnel from a session of its own.
	served := 0
	for i, e := range edges {
		if !slices.Contains(holders, e.Status().Fleet.Edge) {
			continue
		}
		if st := e.Stats(); st.Sessions != 1 || st.Hostnames != 1 {
			t.Fatalf("edge %d holds the lease with %+v, want one session and one hostname", i, st)
		}
		resp, err := viaEdge(t, e.HTTPAddr().String()).Get("http://twice.localhost/")
		if err != nil {
			t.Fatalf("edge %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "two edges" {
			t.Fatalf("edge %d answered %d %q", i, resp.StatusCode, b)
		}
		served++
	}
	if served != agent.DefaultSessions {
		t.Fatalf("%d edges served the tunnel, want %d", served, agent.DefaultSessions)
	}
}
