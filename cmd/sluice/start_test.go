package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

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
	srv, err := server.New(server.Config{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", Domain: "localhost", Tokens: []string{"T"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(ctx) }()
	defer func() { cancel(); wg.Wait() }()

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
	agentCtx, stopAgent := context.WithCancel(ctx)
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
