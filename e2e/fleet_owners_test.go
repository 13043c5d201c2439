package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/server"
)

// fleetAgent is an agent run until the test ends, whose assignments and
// end can be watched.
type fleetAgent struct {
	assigned chan control.Assigned
	done     chan error // Run's result, put back by whoever reads it
	cancel   context.CancelFunc
}

// stop ends the agent and waits for it.
func (fa *fleetAgent) stop(t *testing.T) {
	t.Helper()
	fa.cancel()
	select {
	case err := <-fa.done:
		fa.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("an agent did not stop within 10 s")
	}
}

func runFleetAgent(t *testing.T, e *server.Server, tok string, tunnels ...agent.Tunnel) *fleetAgent {
	t.Helper()
	fa := &fleetAgent{assigned: make(chan control.Assigned, 16), done: make(chan error, 1)}
	a, err := agent.New(agent.Config{Server: e.Addr().String(), Token: tok, Tunnels: tunnels,
		OnAssigned: func(_ int, as control.Assigned) {
			select {
			case fa.assigned <- as:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fa.cancel = cancel
	go func() { fa.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-fa.done:
		case <-time.After(10 * time.Second):
			t.Error("an agent did not stop within 10 s")
		}
	})
	return fa
}

// outcome waits for the agent's first assignment or its end, and returns
// nil for an assignment or the control error that ended it.
func (fa *fleetAgent) outcome(t *testing.T) *control.Error {
	t.Helper()
	select {
	case <-fa.assigned:
		return nil
	case err := <-fa.done:
		var ce *control.Error
		if !errors.As(err, &ce) {
			t.Fatalf("agent ended with %v, want a control error", err)
		}
		fa.done <- err // for the cleanup
		return ce
	case <-time.After(15 * time.Second):
		t.Fatal("agent neither got its tunnel nor ended within 15 s")
		return nil
	}
}

// An agent asking to take over a name an agent of the same owner holds on
// another edge wins it across the fleet: the old holder is told and ends,
// and every edge serves the new one.
func TestFleetTakeoverAcrossEdges(t *testing.T) {
	edges := startFleet(t, 3)
	serve := func(who string) string {
		return localHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, who) }))
	}
	old := runFleetAgent(t, edges[0], token, agent.Tunnel{Kind: control.KindHTTP, Name: "app", Local: serve("old")})
	if ce := old.outcome(t); ce != nil {
		t.Fatalf("the first agent was refused: %v", ce)
	}
	// Without asking for a takeover, the name is taken.
	plain := runFleetAgent(t, edges[1], token, agent.Tunnel{Kind: control.KindHTTP, Name: "app", Local: serve("plain")})
	if ce := plain.outcome(t); ce == nil || ce.Code != control.CodeNameTaken {
		t.Fatalf("a second agent without takeover: %v, want %s", ce, control.CodeNameTaken)
	}
	taker := runFleetAgent(t, edges[1], token, agent.Tunnel{Kind: control.KindHTTP, Name: "app", Local: serve("new"), Takeover: true})
	if ce := taker.outcome(t); ce != nil {
		t.Fatalf("the takeover was refused: %v", ce)
	}
	select {
	case err := <-old.done:
		var ce *control.Error
		if !errors.As(err, &ce) || ce.Code != control.CodeTakenOver || !strings.Contains(ce.Message, "another edge") {
			t.Fatalf("the old holder ended with %v, want %s naming another edge", err, control.CodeTakenOver)
		}
		old.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("the old holder was not told within 10 s")
	}
	for i, e := range edges {
		c := viaEdge(t, e.HTTPAddr().String())
		eventually(t, fmt.Sprintf("edge %d serves the new holder", i), func() error {
			body, err := getOK(c, "http://app.localhost/")
			if err == nil && body != "new" {
				err = fmt.Errorf("answered %q", body)
			}
			return err
		})
	}
}

// getOK returns the body of a GET answered 200, else the status as an error.
func getOK(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), errors.New(resp.Status)
	}
	return string(b), err
}

// max_tunnels counts an owner's tunnels on every edge of the fleet: agents
// racing on three edges for a limit of two get exactly two tunnels, and a
// tunnel closed on one edge frees its place for another edge.
func TestFleetMaxTunnelsCountsEveryEdge(t *testing.T) {
	edges := startFleetWithTokens(t, "tokens:\n  - token: alice-secret\n    owner: alice\n    max_tunnels: 2\n")
	local := localHTTP(t, http.NotFoundHandler())
	for round := range 3 {
		var agents [3]*fleetAgent
		var refused [3]*control.Error
		var wg sync.WaitGroup
		for i := range agents {
			agents[i] = runFleetAgent(t, edges[i], "alice-secret",
				agent.Tunnel{Kind: control.KindHTTP, Name: "r" + strconv.Itoa(round) + "e" + strconv.Itoa(i), Local: local})
		}
		for i := range agents {
			wg.Add(1)
			go func() {
				defer wg.Done()
				refused[i] = agents[i].outcome(t)
			}()
		}
		wg.Wait()
		var loser = -1
		for i, ce := range refused {
			switch {
			case ce == nil:
			case ce.Code == control.CodeLimit && strings.Contains(ce.Message, "fleet") && loser < 0:
				loser = i
			default:
				t.Fatalf("round %d, edge %d: %v", round, i, ce)
			}
		}
		if loser < 0 {
			t.Fatalf("round %d: all three agents of an owner limited to 2 tunnels got one", round)
		}
		// Closing one winner's tunnel frees a place, on another edge.
		winner := (loser + 1) % 3
		agents[winner].stop(t)
		// The edge lowers its count as the session ends, just after the
		// agent returns: a refusal in between is tried again.
		deadline := time.Now().Add(10 * time.Second)
		for {
			again := runFleetAgent(t, edges[loser], "alice-secret",
				agent.Tunnel{Kind: control.KindHTTP, Name: "r" + strconv.Itoa(round) + "again", Local: local})
			ce := again.outcome(t)
			again.stop(t)
			if ce == nil {
				break
			}
			if ce.Code != control.CodeLimit || time.Now().After(deadline) {
				t.Fatalf("round %d: after a tunnel closed on edge %d, edge %d refused: %v", round, winner, loser, ce)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for i, fa := range agents {
			if i != winner && refused[i] == nil {
				fa.stop(t)
			}
		}
	}
}

// Many agents of one owner registering at once on three edges, several on
// each: exactly the limit's number get a tunnel (three rounds, an owner
// each).
func TestFleetMaxTunnelsUnderConcurrentRegistrations(t *testing.T) {
	tokens := "tokens:\n"
	for round := range 3 {
		tokens += fmt.Sprintf("  - token: bob-secret-%d\n    owner: bob%d\n    max_tunnels: 5\n", round, round)
	}
	edges := startFleetWithTokens(t, tokens)
	local := localHTTP(t, http.NotFoundHandler())
	for round := range 3 {
		agents := make([]*fleetAgent, 12)
		for i := range agents {
			agents[i] = runFleetAgent(t, edges[i%3], "bob-secret-"+strconv.Itoa(round),
				agent.Tunnel{Kind: control.KindHTTP, Name: "b" + strconv.Itoa(round) + "n" + strconv.Itoa(i), Local: local})
		}
		var won, limited atomic.Int32
		var wg sync.WaitGroup
		for i, fa := range agents {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch ce := fa.outcome(t); {
				case ce == nil:
					won.Add(1)
				case ce.Code == control.CodeLimit:
					limited.Add(1)
				default:
					t.Errorf("round %d, agent %d: %v", round, i, ce)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 5 || limited.Load() != 7 {
			t.Fatalf("round %d: %d agents got a tunnel and %d were refused; want 5 and 7", round, won.Load(), limited.Load())
		}
	}
}

// A TCP port taken over on another edge: the old edge lets the port go and
// mirrors it, forwarding its connections to the new holder's edge.
func TestFleetTakeoverOfATCPPortAcrossEdges(t *testing.T) {
	edges, _ := startFleetWithMetrics(t, 3, onOwnHosts)
	port := testutil.FreePort(t)
	oldLocal, newLocal := prefixEcho(t, "old:"), prefixEcho(t, "new:")
	old := runFleetAgent(t, edges[0], token, agent.Tunnel{Kind: control.KindTCP, RemotePort: port, Local: oldLocal})
	if ce := old.outcome(t); ce != nil {
		t.Fatalf("the first agent was refused: %v", ce)
	}
	taker := runFleetAgent(t, edges[1], token, agent.Tunnel{Kind: control.KindTCP, RemotePort: port, Local: newLocal, Takeover: true})
	if ce := taker.outcome(t); ce != nil {
		t.Fatalf("the takeover was refused: %v", ce)
	}
	select {
	case err := <-old.done:
		var ce *control.Error
		if !errors.As(err, &ce) || ce.Code != control.CodeTakenOver {
			t.Fatalf("the old holder ended with %v, want %s", err, control.CodeTakenOver)
		}
		old.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("the old holder was not told within 10 s")
	}
	for i := range edges {
		addr := "127.0.0." + strconv.Itoa(i+1) + ":" + strconv.Itoa(port)
		eventually(t, fmt.Sprintf("edge %d (%s) serves the new holder", i, addr), func() error {
			got, err := askTCP(addr, "x")
			if err == nil && got != "new:x" {
				err = fmt.Errorf("answered %q", got)
			}
			return err
		})
	}
}

// prefixEcho is a local TCP service that answers what it reads, prefixed.
func prefixEcho(t *testing.T, prefix string) string {
	t.Helper()
	return testutil.Serve(t, func(c net.Conn) {
		b := make([]byte, 256)
		if n, err := c.Read(b); err == nil {
			c.Write(append([]byte(prefix), b[:n]...))
		}
	})
}

// eventually retries try for up to 10 s (the edges learn of a change
// through their watch) and fails the test with its last error.
func eventually(t *testing.T, what string, try func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := try()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// askTCP sends msg to addr and returns the first answer.
func askTCP(addr, msg string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	b := make([]byte, 256)
	n, err := c.Read(b)
	return string(b[:n]), err
}

// max_leases bounds an owner's leases across the fleet: an agent restarted
// on one edge after another gets a new random name each time, and past
// the bound the owner's offline leases that went offline first are gone
// from the fleet.
func TestFleetMaxLeasesCountsEveryEdge(t *testing.T) {
	edges := startFleetWithTokens(t, "tokens:\n  - token: loop-secret\n    owner: loop\n    max_leases: 2\n")
	local := localHTTP(t, http.NotFoundHandler())
	var hosts []string
	for i := range 5 {
		fa := runFleetAgent(t, edges[i%3], "loop-secret", agent.Tunnel{Kind: control.KindHTTP, Local: local})
		select {
		case as := <-fa.assigned:
			hosts = append(hosts, as.Hostname)
		case err := <-fa.done:
			t.Fatalf("agent %d: %v", i, err)
		case <-time.After(15 * time.Second):
			t.Fatalf("agent %d got no tunnel within 15 s", i)
		}
		fa.stop(t)
		// Offline once its edge let go: the next claim may evict it.
		eventually(t, hosts[len(hosts)-1]+" released", func() error {
			if fleetKnows(edges[0], "host:"+hosts[len(hosts)-1]) {
				return errors.New("still held")
			}
			return nil
		})
	}
	eventually(t, "the oldest leases gone", func() error {
		v := edges[(len(hosts)+1)%3].Status().Fleet
		have := map[string]bool{}
		for _, l := range v.Leases {
			have[l.Key] = true
		}
		for i, h := range hosts {
			// The last claim evicted down to the bound, itself included:
			// the newest and the one before it stay.
			if want := i >= len(hosts)-2; have["host:"+h] != want {
				return fmt.Errorf("lease %d (%s) in the fleet: %v, want %v; fleet has %v", i, h, have["host:"+h], want, v.Leases)
			}
		}
		return nil
	})
}

// startFleetWithTokens runs three edges whose agents authenticate with the
// tokens file tokens.
func startFleetWithTokens(t *testing.T, tokens string) []*server.Server {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(file, []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	rules, err := server.LoadTokensFile(file)
	if err != nil {
		t.Fatal(err)
	}
	edges, _ := startFleetWithMetrics(t, 3, func(_ int, c *server.Config) { c.Tokens, c.TokenRules = nil, rules })
	return edges
}
