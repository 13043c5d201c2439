package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/edgetest"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/server"
)

// lineWriter collects output lines and signals each one.
type lineWriter struct {
	mu    sync.Mutex
	buf   strings.Builder
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		s := w.buf.String()
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		w.lines <- s[:i]
		w.buf.Reset()
		w.buf.WriteString(s[i+1:])
	}
	return len(p), nil
}

func TestStartRunsEveryTunnelOfTheFile(t *testing.T) {
	srv := edgetest.Start(t, server.New, server.Config{Listen: edgetest.Loopback, HTTP: edgetest.Loopback, Domain: "localhost", Tokens: []string{"T"}}).S

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "from app") }))
	defer app.Close()
	echo, _ := net.Listen("tcp", "127.0.0.1:0")
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()

	file := writeFile(t, fmt.Sprintf(`server: %s
token: T
insecure: true
log_level: warn
tunnels:
  - type: http
    local: %s
    name: web
  - type: tcp
    local: %s
`, srv.Addr(), app.Listener.Addr(), echo.Addr()))
	t.Setenv("SLUICE_SERVER", "")
	t.Setenv("SLUICE_TOKEN", "")
	out := &lineWriter{lines: make(chan string, 10)}
	agentCtx, stopAgent := context.WithCancel(context.Background())
	defer stopAgent()
	done := make(chan error, 1)
	go func() { done <- runStart(agentCtx, []string{"-c", file}, out, io.Discard) }()

	urls := map[string]string{}
	for len(urls) < 2 {
		select {
		case l := <-out.lines:
			if m := regexp.MustCompile(`^Forwarding ((http|tcp)://\S+) -> `).FindStringSubmatch(l); m != nil {
				urls[m[2]] = m[1]
			}
		case err := <-done:
			t.Fatalf("start ended early: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("start printed %d tunnel URLs in 10 s, want 2", len(urls))
		}
	}
	if !strings.HasPrefix(urls["http"], "http://web.localhost:") {
		t.Fatalf("http tunnel URL %q", urls["http"])
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("tcp", srv.HTTPAddr().String())
	}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(urls["http"])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "from app" {
		t.Fatalf("http tunnel: %q", body)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(urls["tcp"], "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("tcp tunnel: %q %v", buf, err)
	}
	c.Close()
	stopAgent()
	if err := <-done; err != nil {
		t.Fatalf("start after its context ended: %v", err)
	}
}

func TestStartRejectsBadTunnels(t *testing.T) {
	for _, body := range []string{
		"server: x:1\ntoken: T\n",                                                                 // no tunnels
		"server: x:1\ntoken: T\ntunnels: []\n",                                                    // empty
		"server: x:1\ntoken: T\ntunnels:\n  - type: sctp\n    local: 1\n",                         // bad type
		"server: x:1\ntoken: T\ntunnels:\n  - type: udp\n    local: 1\n    proxy_protocol: v1\n",  // PROXY over UDP
		"server: x:1\ntoken: T\ntunnels:\n  - type: http\n    local: 1\n    proxy_protocol: v2\n", // PROXY while parsing HTTP
		"server: x:1\ntoken: T\ntunnels:\n  - type: tcp\n    local: 1\n    log_requests: false\n", // log_requests on tcp
		"server: x:1\ntoken: T\ntunnels:\n  - type: tcp\n    lokal: 1\n",                          // unknown field
	} {
		t.Setenv("SLUICE_SERVER", "")
		t.Setenv("SLUICE_TOKEN", "")
		err := runStart(context.Background(), []string{"-c", writeFile(t, body)}, io.Discard, io.Discard)
		if exitCode(err) != exitUsage {
			t.Errorf("config %q: got %v (exit %d), want a usage error", body, err, exitCode(err))
		}
	}
}

// TestStartReloadsWhenTheFileChanges: rewriting the file adds and removes
// tunnels; a connection through a tunnel the change did not touch keeps
// flowing, and a file that no longer parses changes nothing.
func TestStartReloadsWhenTheFileChanges(t *testing.T) {
	srv := edgetest.Start(t, server.New, server.Config{Listen: edgetest.Loopback, HTTP: edgetest.Loopback, Domain: "localhost", Tokens: []string{"T"}}).S
	echo := testutil.EchoServer(t)
	appA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a") }))
	defer appA.Close()
	appB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") }))
	defer appB.Close()
	head := fmt.Sprintf("server: %s\ntoken: T\ninsecure: true\nlog_level: warn\ntunnels:\n  - {type: tcp, local: %q}\n", srv.Addr(), echo)
	file := writeFile(t, head+fmt.Sprintf("  - {type: http, local: %q, name: old}\n", appA.Listener.Addr()))
	t.Setenv("SLUICE_SERVER", "")
	t.Setenv("SLUICE_TOKEN", "")
	out := &lineWriter{lines: make(chan string, 10)}
	var logs testutil.SyncBuffer
	agentCtx, stopAgent := context.WithCancel(context.Background())
	defer stopAgent()
	done := make(chan error, 1)
	go func() { done <- runStart(agentCtx, []string{"-c", file, "--log-level", "info"}, out, &logs) }()
	var seen []string // lines read while waiting for another
	forwarding := func(re string) string {
		t.Helper()
		rx := regexp.MustCompile(re)
		for i, l := range seen {
			if m := rx.FindStringSubmatch(l); m != nil {
				seen = append(seen[:i], seen[i+1:]...)
				return m[1]
			}
		}
		for {
			select {
			case l := <-out.lines:
				if m := rx.FindStringSubmatch(l); m != nil {
					return m[1]
				}
				seen = append(seen, l)
			case err := <-done:
				t.Fatalf("start ended early: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatalf("no line matching %q in 10 s; log:\n%s", re, logs.String())
			}
		}
	}
	tcpURL := forwarding(`^Forwarding tcp://(\S+) -> `)
	forwarding(`^Forwarding (http://old\.localhost:\d+) -> `)
	c, err := net.Dial("tcp", tcpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	roundTrip := func(msg string) {
		t.Helper()
		io.WriteString(c, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("through the untouched tcp tunnel: %q, %v", buf, err)
		}
	}
	roundTrip("before")

	// Swap the http tunnel; the tcp one stays as it was.
	os.WriteFile(file, []byte(head+fmt.Sprintf("  - {type: http, local: %q, name: new}\n", appB.Listener.Addr())), 0o600)
	swapped := time.Now()
	forwarding(`^Forwarding (http://new\.localhost:\d+) -> `)
	t.Logf("the swap took %v", time.Since(swapped))
	roundTrip("after")
	client := viaIngress(srv.HTTPAddr().String())
	defer client.CloseIdleConnections()
	for host, want := range map[string]int{"new.localhost": 200, "old.localhost": 502} {
		resp, err := client.Get("http://" + host + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s after the reload: %d, want %d", host, resp.StatusCode, want)
		}
	}
	// A broken file is logged; the tunnels stay.
	os.WriteFile(file, []byte("tunnels: [not: valid"), 0o600)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "reload failed: the tunnels stay as they were") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload failure logged for a broken file; log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	roundTrip("still")
	c.Close() // nothing in flight: the agents stop without a drain
	stopAgent()
	if err := <-done; err != nil {
		t.Fatalf("start after its context ended: %v", err)
	}
}
