package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testutil"
)

// waitStderr waits until the process's stderr matches re.
func (p *proc) waitStderr(re string, within time.Duration) {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(within)
	for !rx.MatchString(p.stderr.String()) {
		if time.Now().After(deadline) {
			p.t.Fatalf("%v logged nothing matching %q in %v; stderr:\n%s", p.cmd.Args, re, within, p.stderr.String())
		}
		select {
		case <-p.done:
			if !rx.MatchString(p.stderr.String()) {
				p.t.Fatalf("%v exited (code %d) before logging %q; stderr:\n%s", p.cmd.Args, p.code, re, p.stderr.String())
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// noNewForwarding fails if the agent printed another Forwarding line: it
// prints one only when its URL changed.
func (p *proc) noNewForwarding() {
	p.t.Helper()
	for {
		select {
		case l := <-p.lines:
			if strings.HasPrefix(l, "Forwarding ") {
				p.t.Fatalf("%v changed its URL: %s", p.cmd.Args, l)
			}
		default:
			return
		}
	}
}

// appServer answers every request with body.
func appServer(t *testing.T, body string) string {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	t.Cleanup(app.Close)
	return strconv.Itoa(app.Listener.Addr().(*net.TCPAddr).Port)
}

// get fetches url through the edge's ingress on a fresh connection.
func get(ingress, url string) (string, error) {
	c := viaIngress(ingress)
	c.Transport.(*http.Transport).DisableKeepAlives = true
	c.Timeout = 5 * time.Second
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), err
}

// eventually retries f until it succeeds or within passes.
func eventually(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func loopbackAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)) }

// TestE2EEdgeKill9KeepsURLsAndPin: an edge killed with SIGKILL and started
// again on the same state directory hands every agent its random URL back,
// and keeps its generated certificate, so agents that pinned it reconnect.
func TestE2EEdgeKill9KeepsURLsAndPin(t *testing.T) {
	dir := t.TempDir()
	listen, httpAddr := loopbackAddr(t), loopbackAddr(t)
	args := []string{"server", "--listen", listen, "--http", httpAddr, "--domain", "localhost", "--token", "T", "--state-dir", dir}
	edge := startProc(t, args...)
	pin := edge.waitLine(`agents pass --pin ([0-9a-f:]{95})$`)[1]
	edge.waitLine(`agents connect to`)
	svc := testutil.SumService(t)
	web := startProc(t, "http", appServer(t, "A"), "--server", listen, "--token", "T", "--pin", pin)
	url := web.waitLine(`^Forwarding (http://[a-z]+-[a-z]+-\d+\.localhost:\d+) -> `)[1]
	tcp := startProc(t, "tcp", svc, "--server", listen, "--token", "T", "--pin", pin)
	tcpURL := tcp.waitLine(`^Forwarding tcp://(127\.0\.0\.1:\d+) -> `)[1]

	edge.cmd.Process.Kill()
	edge.wait()
	edge2 := startProc(t, args...)
	if pin2 := edge2.waitLine(`agents pass --pin ([0-9a-f:]{95})$`)[1]; pin2 != pin {
		t.Fatalf("the restarted edge has pin %s, want the kept %s", pin2, pin)
	}
	eventually(t, 20*time.Second, "the random HTTP URL after the restart", func() error {
		body, err := get(httpAddr, url+"/")
		if err == nil && body != "A" {
			err = fmt.Errorf("answered %q", body)
		}
		return err
	})
	eventually(t, 20*time.Second, "the random TCP port after the restart", func() error {
		c, err := net.DialTimeout("tcp", tcpURL, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "x")
		c.(*net.TCPConn).CloseWrite()
		reply, _ := io.ReadAll(c)
		if !strings.HasSuffix(string(reply), " 1") {
			return fmt.Errorf("service answered %q", reply)
		}
		return nil
	})
	edge2.waitStderr(`tunnel online".*reclaimed=true`, 5*time.Second)
	web.noNewForwarding()
	tcp.noNewForwarding()
	for _, p := range []*proc{web, tcp, edge2} {
		if code := p.stop(syscall.SIGTERM); code != 0 {
			t.Errorf("%v exited %d; stderr:\n%s", p.cmd.Args, code, p.stderr.String())
		}
	}
}

// TestE2ETwoAgentsRaceForOneName: two agents with the same token start at
// once for one name: exactly one gets it, the other exits 5 saying who holds
// it, and the winner keeps serving until a third takes it over explicitly.
func TestE2ETwoAgentsRaceForOneName(t *testing.T) {
	listen, httpAddr := loopbackAddr(t), loopbackAddr(t)
	edge := startProc(t, "server", "--listen", listen, "--http", httpAddr, "--domain", "localhost", "--token", "T", "--insecure")
	edge.waitLine(`agents connect to`)
	bodies := []string{"first", "second"}
	procs := make([]*proc, 2)
	for i := range procs {
		procs[i] = startProc(t, "http", appServer(t, bodies[i]), "--server", listen, "--token", "T", "--name", "race", "--insecure")
	}
	type outcome struct {
		i      int
		online bool
	}
	results := make(chan outcome, 2)
	for i, p := range procs {
		go func() {
			for {
				select {
				case l := <-p.lines:
					if strings.HasPrefix(l, "Forwarding http://race.localhost") {
						results <- outcome{i, true}
						return
					}
				case <-p.done:
					results <- outcome{i, false}
					return
				case <-time.After(20 * time.Second):
					results <- outcome{i, false}
					return
				}
			}
		}()
	}
	a, b := <-results, <-results
	if a.online == b.online {
		t.Fatalf("online: agent %d %v, agent %d %v; want exactly one", a.i, a.online, b.i, b.online)
	}
	winner, loser := a.i, b.i
	if !a.online {
		winner, loser = b.i, a.i
	}
	if code := procs[loser].wait(); code != exitConflict {
		t.Fatalf("the losing agent exited %d, want %d; stderr:\n%s", code, exitConflict, procs[loser].stderr.String())
	}
	msg := procs[loser].stderr.String()
	for _, want := range []string{"race.localhost is held by a live agent at 127.0.0.1:", "since", "--takeover", "--pool"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("the loser's message does not say %q:\n%s", want, msg)
		}
	}
	if body, err := get(httpAddr, "http://race.localhost/"); err != nil || body != bodies[winner] {
		t.Fatalf("race.localhost answered %q, %v; want the winner's %q", body, err, bodies[winner])
	}
	// --takeover replaces the holder, which is told and exits 5.
	third := startProc(t, "http", appServer(t, "third"), "--server", listen, "--token", "T", "--name", "race", "--takeover", "--insecure")
	third.waitLine(`^Forwarding http://race\.localhost`)
	if code := procs[winner].wait(); code != exitConflict || !strings.Contains(procs[winner].stderr.String(), "taken over") {
		t.Fatalf("the replaced agent exited %d, want %d saying it was taken over; stderr:\n%s", code, exitConflict, procs[winner].stderr.String())
	}
	if body, err := get(httpAddr, "http://race.localhost/"); err != nil || body != "third" {
		t.Fatalf("after the takeover race.localhost answered %q, %v", body, err)
	}
	third.stop(syscall.SIGTERM)
	edge.stop(syscall.SIGTERM)
}

// TestE2EPooledAgentsShareLoad: agents that both ask for --pool share the
// name; requests go to both, and the name stays up when one leaves.
func TestE2EPooledAgentsShareLoad(t *testing.T) {
	listen, httpAddr := loopbackAddr(t), loopbackAddr(t)
	edge := startProc(t, "server", "--listen", listen, "--http", httpAddr, "--domain", "localhost", "--token", "T", "--insecure")
	edge.waitLine(`agents connect to`)
	a := startProc(t, "http", appServer(t, "A"), "--server", listen, "--token", "T", "--name", "pool", "--pool", "--insecure")
	a.waitLine(`^Forwarding http://pool\.localhost`)
	b := startProc(t, "http", appServer(t, "B"), "--server", listen, "--token", "T", "--name", "pool", "--pool", "--insecure")
	b.waitLine(`^Forwarding http://pool\.localhost`)
	seen := map[string]int{}
	for range 40 {
		body, err := get(httpAddr, "http://pool.localhost/")
		if err != nil {
			t.Fatal(err)
		}
		seen[body]++
	}
	if seen["A"] < 10 || seen["B"] < 10 {
		t.Fatalf("40 requests to a pool of two went %v; want both to carry a share", seen)
	}
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("pool member A exited %d", code)
	}
	for range 10 {
		if body, err := get(httpAddr, "http://pool.localhost/"); err != nil || body != "B" {
			t.Fatalf("with A gone the pool answered %q, %v; want B", body, err)
		}
	}
	b.stop(syscall.SIGTERM)
	edge.stop(syscall.SIGTERM)
}

// TestE2EReloadUnderTraffic: SIGHUP re-reads the tokens file while requests
// flow; no request fails, the session of a removed token is closed with a
// message (exit 3), and a broken file keeps the old configuration.
func TestE2EReloadUnderTraffic(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yml")
	write := func(body string) {
		if err := os.WriteFile(tokens, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("tokens:\n  - {token: alice-secret, owner: alice}\n  - {token: bob-secret, owner: bob}\n")
	listen, httpAddr := loopbackAddr(t), loopbackAddr(t)
	edge := startProc(t, "server", "--listen", listen, "--http", httpAddr, "--domain", "localhost", "--tokens-file", tokens, "--insecure")
	edge.waitLine(`agents connect to`)
	alice := startProc(t, "http", appServer(t, "alice"), "--server", listen, "--token", "alice-secret", "--name", "alice", "--insecure")
	alice.waitLine(`^Forwarding http://alice\.localhost`)
	bob := startProc(t, "http", appServer(t, "bob"), "--server", listen, "--token", "bob-secret", "--name", "bob", "--insecure")
	bob.waitLine(`^Forwarding http://bob\.localhost`)
	edge.waitStderr(`tunnel online".*owner=alice`, 5*time.Second)

	ctx, stop := context.WithCancel(context.Background())
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := viaIngress(httpAddr)
			defer c.CloseIdleConnections()
			for ctx.Err() == nil {
				resp, err := c.Get("http://alice.localhost/")
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || string(b) != "alice" {
						err = fmt.Errorf("%d %q", resp.StatusCode, b)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	for ok.Load() < 50 {
		time.Sleep(10 * time.Millisecond)
	}
	write("tokens:\n  - {token: alice-secret, owner: alice, max_tunnels: 3}\n")
	edge.cmd.Process.Signal(syscall.SIGHUP)
	if code := bob.wait(); code != exitAuth || !strings.Contains(bob.stderr.String(), "removed") {
		t.Fatalf("bob, whose token was removed, exited %d; want %d with a message; stderr:\n%s", code, exitAuth, bob.stderr.String())
	}
	edge.waitStderr(`configuration reloaded`, 5*time.Second)
	write("tokens: [this is not: a token list")
	edge.cmd.Process.Signal(syscall.SIGHUP)
	edge.waitStderr(`reload failed: the old configuration stays`, 5*time.Second)
	before := ok.Load()
	for ok.Load() < before+50 {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed across the reloads; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	t.Logf("%d requests, none failed, across two reloads", ok.Load())
	if code := alice.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("alice exited %d; stderr:\n%s", code, alice.stderr.String())
	}
	edge.stop(syscall.SIGTERM)
}

// blackhole is a TCP proxy the test controls: while cut, it stops moving
// bytes both ways and holds new connections silent, as a dead link does.
type blackhole struct {
	ln     net.Listener
	target string
	cut    atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.track(c)
			if b.cut.Load() {
				continue // held open, never answered
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			b.track(u)
			for _, pair := range [][2]net.Conn{{c, u}, {u, c}} {
				b.wg.Add(1)
				go func() {
					defer b.wg.Done()
					buf := make([]byte, 32<<10)
					for {
						n, err := pair[0].Read(buf)
						if err != nil {
							pair[1].Close()
							return
						}
						if b.cut.Load() {
							continue // the link died: bytes vanish
						}
						if _, err := pair[1].Write(buf[:n]); err != nil {
							return
						}
					}
				}()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *blackhole) track(c net.Conn) {
	b.mu.Lock()
	b.conns = append(b.conns, c)
	b.mu.Unlock()
}

// TestE2ECutSessionIsNoticed: a link that goes silent is noticed by both
// ends within the keepalive timeout (30 s by default, so this test takes
// about that long); once the link is back the agent returns with its URL.
func TestE2ECutSessionIsNoticed(t *testing.T) {
	listen, httpAddr := loopbackAddr(t), loopbackAddr(t)
	edge := startProc(t, "server", "--listen", listen, "--http", httpAddr, "--domain", "localhost", "--token", "T", "--insecure")
	edge.waitLine(`agents connect to`)
	link := newBlackhole(t, listen)
	ag := startProc(t, "http", appServer(t, "up"), "--server", link.ln.Addr().String(), "--token", "T", "--insecure")
	url := ag.waitLine(`^Forwarding (http://\S+) -> `)[1]
	if body, err := get(httpAddr, url+"/"); err != nil || body != "up" {
		t.Fatalf("before the cut: %q, %v", body, err)
	}
	link.cut.Store(true)
	cutAt := time.Now()
	const timeout = 30 * time.Second // mux.DefaultConfig().KeepAliveTimeout
	edge.waitStderr(`agent session ended`, timeout+10*time.Second)
	edgeNoticed := time.Since(cutAt)
	ag.waitStderr(`lost the edge session`, timeout+10*time.Second)
	agentNoticed := time.Since(cutAt)
	t.Logf("after the cut the edge noticed in %v, the agent in %v (timeout %v)", edgeNoticed.Round(100*time.Millisecond), agentNoticed.Round(100*time.Millisecond), timeout)
	if edgeNoticed > timeout+3*time.Second || agentNoticed > timeout+3*time.Second {
		t.Fatalf("a dead link was noticed after %v (edge) and %v (agent); the timeout is %v", edgeNoticed, agentNoticed, timeout)
	}
	link.cut.Store(false)
	eventually(t, 45*time.Second, "the URL once the link is back", func() error {
		body, err := get(httpAddr, url+"/")
		if err == nil && body != "up" {
			err = fmt.Errorf("answered %q", body)
		}
		return err
	})
	ag.noNewForwarding()
	ag.stop(syscall.SIGTERM)
	edge.stop(syscall.SIGTERM)
}

// TestE2ESecondInterruptExitsAtOnce: the first SIGINT drains connections in
// flight (up to 10 s); a second one exits at once with 130.
func TestE2ESecondInterruptExitsAtOnce(t *testing.T) {
	listen := loopbackAddr(t)
	edge := startProc(t, "server", "--listen", listen, "--token", "T", "--insecure")
	edge.waitLine(`agents connect to`)
	hold := testutil.Serve(t, func(c net.Conn) {
		// Echo the first bytes, then hold the connection until the client
		// hangs up.
		buf := make([]byte, 9)
		if _, err := io.ReadFull(c, buf); err == nil {
			c.Write(buf)
		}
		io.Copy(io.Discard, c)
	})
	ag := startProc(t, "tcp", hold, "--server", listen, "--token", "T", "--insecure")
	pub := ag.waitLine(`^Forwarding tcp://(\S+) -> `)[1]
	c, err := net.Dial("tcp", pub)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "in flight")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 9)); err != nil {
		t.Fatalf("the connection did not get through: %v", err)
	}
	ag.cmd.Process.Signal(os.Interrupt)
	select {
	case <-ag.done:
		t.Fatalf("the agent exited (%d) on the first SIGINT with a connection in flight; it should drain", ag.code)
	case <-time.After(500 * time.Millisecond):
	}
	second := time.Now()
	if code := ag.stop(os.Interrupt); code != exitSecondInterrupt {
		t.Fatalf("exit %d after a second SIGINT, want %d; stderr:\n%s", code, exitSecondInterrupt, ag.stderr.String())
	}
	if took := time.Since(second); took > 2*time.Second {
		t.Fatalf("the second SIGINT took %v to end the agent", took)
	}
	if !strings.Contains(ag.stderr.String(), "second interrupt") {
		t.Fatalf("no word about the forced exit; stderr:\n%s", ag.stderr.String())
	}
	edge.stop(syscall.SIGTERM)
}
