package agent

import (
	"github.com/sluicehq/sluice/internal/testutil"

	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

// killProxy sits between agent and edge so a test can cut the link the way a
// killed process or a dead network does: every connection reset at once.
type killProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*net.TCPConn
	wg     sync.WaitGroup
}

func newKillProxy(t *testing.T, target string) *killProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &killProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c.(*net.TCPConn), d.(*net.TCPConn))
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(d, c); d.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, d); c.Close() }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *killProxy) addr() string { return p.ln.Addr().String() }

// kill resets every connection through the proxy.
func (p *killProxy) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.SetLinger(0)
		c.Close()
	}
	p.conns = nil
}

func (p *killProxy) close() {
	p.ln.Close()
	p.kill()
	p.wg.Wait()
}

func getBody(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestNameConflictBetweenTokens(t *testing.T) {
	e := startEdge(t, nil)
	local := fileServer(t)
	tun := Tunnel{Kind: control.KindHTTP, Name: "mine", Local: local.Listener.Addr().String()}
	_, stopA := runAgent(t, e, nil, tun)

	tryOther := func() error {
		a, err := New(Config{Server: e.srv.Addr().String(), Token: "other-token", Tunnels: []Tunnel{tun}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return a.Run(ctx)
	}
	var ce *control.Error
	if err := tryOther(); !errors.As(err, &ce) || ce.Code != control.CodeNameTaken {
		t.Fatalf("another token asking for a live name: got %v, want %s", err, control.CodeNameTaken)
	}
	// After the holder leaves, the name stays reserved for its token.
	stopA()
	if err := tryOther(); !errors.As(err, &ce) || ce.Code != control.CodeNameTaken {
		t.Fatalf("another token asking for a just-released name: got %v, want %s", err, control.CodeNameTaken)
	}
	c := clientFor(e)
	defer c.CloseIdleConnections()
	if code, body := getBody(t, c, "http://mine.localhost/"); code != http.StatusBadGateway {
		t.Fatalf("reserved name while its agent is away: %d %q, want the 502 offline page", code, body)
	}
}

func TestSameTokenReclaimsNameAfterReconnect(t *testing.T) {
	e := startEdge(t, nil)
	local := fileServer(t)
	proxy := newKillProxy(t, e.srv.Addr().String())
	assigned := make(chan control.Assigned, 4)
	_, _ = runAgent(t, e, func(c *Config) {
		c.Server = proxy.addr()
		everyAssignment(c, assigned)
	}, Tunnel{Kind: control.KindHTTP, Name: "keep", Local: local.Listener.Addr().String()})
	first := <-assigned
	proxy.kill()
	expectSameURL(t, assigned, first, 10*time.Second)
	c := clientFor(e)
	defer c.CloseIdleConnections()
	if code, body := getBody(t, c, first.URL+"/"); code != 200 {
		t.Fatalf("after reconnect: %d %q", code, body)
	}
}

func TestEdgeRestartAgentComesBack(t *testing.T) {
	ctrlAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	fixed := func(c *server.Config) { c.Listen, c.HTTP = ctrlAddr, httpAddr }
	e1 := startEdge(t, fixed)
	local := fileServer(t)
	as, _ := runAgent(t, e1, nil, Tunnel{Kind: control.KindHTTP, Name: "phoenix", Local: local.Listener.Addr().String()})
	url := as[0].URL
	e1.stop()

	e2 := startEdge(t, fixed)
	restarted := time.Now()
	c := clientFor(e2)
	defer c.CloseIdleConnections()
	for {
		code, _ := getBody(t, c, url+"/")
		if code == 200 {
			break
		}
		if time.Since(restarted) > 5*time.Second {
			t.Fatalf("%s did not serve again within 5 s of the edge restarting (last status %d)", url, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAgentKilledMidStream(t *testing.T) {
	e := startEdge(t, nil)
	// A local service that streams forever, so every connection is mid-stream
	// when the agent dies.
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var svcWG sync.WaitGroup
	svcWG.Add(1)
	go func() {
		defer svcWG.Done()
		for {
			c, err := svc.Accept()
			if err != nil {
				return
			}
			svcWG.Add(1)
			go func() {
				defer svcWG.Done()
				defer c.Close()
				buf := make([]byte, 16<<10)
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	defer func() { svc.Close(); svcWG.Wait() }()

	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap := ms.HeapAlloc

	proxy := newKillProxy(t, e.srv.Addr().String())
	as, stop := runAgent(t, e, func(c *Config) { c.Server = proxy.addr() }, Tunnel{Kind: control.KindTCP, Local: svc.Addr().String()})
	addr := tcpAddrOf(t, as[0].URL)
	const clients = 20
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 64<<10)); err != nil {
			t.Fatalf("client %d before the kill: %v", i, err)
		}
		conns[i] = c
	}
	proxy.kill()
	stop() // the killed agent does not come back
	for i, c := range conns {
		_, err := io.Copy(io.Discard, c)
		if err == nil {
			t.Errorf("client %d: clean EOF after the agent died mid-stream; want an error", i)
		}
		c.Close()
	}
	proxy.close()

	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		n := runtime.NumGoroutine()
		st := e.srv.Stats()
		if n <= baseGoroutines && st.Sessions == 0 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d (baseline %d), sessions %d after the agent died\n%s", n, baseGoroutines, st.Sessions, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > baseHeap+32<<20 {
		t.Fatalf("heap %d MiB after the agent died, baseline %d MiB", ms.HeapAlloc>>20, baseHeap>>20)
	}
	if st := e.srv.Stats(); st.Hostnames+st.Ports != 0 {
		t.Fatalf("registry still routes %d hosts and %d ports to a dead agent", st.Hostnames, st.Ports)
	}
}
