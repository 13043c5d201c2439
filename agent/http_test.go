package agent

import (
	"github.com/sluicehq/sluice/internal/testutil"

	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

// clientFor returns an HTTP client that sends every request to the edge's
// HTTP ingress whatever the URL's host, as wildcard DNS for *.localhost would.
func clientFor(e *edge) *http.Client {
	addr := e.srv.HTTPAddr().String()
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			},
			DisableCompression: true,
		},
	}
}

// fileServer is the local service of the HTTP tests.
func fileServer(t *testing.T) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/download":
			n, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
			w.Header().Set("Content-Type", "application/octet-stream")
			io.Copy(w, io.LimitReader(testutil.RandReader(7), n))
		case "/upload":
			sum, n, err := testutil.SumOf(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "%s %d", sum, n)
		case "/headers":
			for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				fmt.Fprintf(w, "%s=%s\n", k, r.Header.Get(k))
			}
			fmt.Fprintf(w, "Host=%s\n", r.Host)
		case "/ws":
			if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
				http.Error(w, "want an upgrade", http.StatusBadRequest)
				return
			}
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			brw.Flush()
			io.Copy(conn, brw) // echo whatever the client sends, raw
		default:
			fmt.Fprint(w, "hello from the local service")
		}
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestHTTPGetAndPostLargeBodies(t *testing.T) {
	e := startEdge(t, nil)
	local := fileServer(t)
	as, _ := runAgent(t, e, nil, Tunnel{Kind: control.KindHTTP, Name: "files", Local: local.Listener.Addr().String(), LogRequests: true})
	url := as[0].URL
	if !strings.HasPrefix(url, "http://files.localhost:") {
		t.Fatalf("tunnel URL %q, want http://files.localhost:PORT", url)
	}
	c := clientFor(e)
	defer c.CloseIdleConnections()

	resp, err := c.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello from the local service" {
		t.Fatalf("GET /: %d %q", resp.StatusCode, body)
	}

	const size = 50 << 20
	want, _, _ := testutil.SumOf(io.LimitReader(testutil.RandReader(7), size))
	resp, err = c.Get(url + "/download?size=" + strconv.Itoa(size))
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := testutil.SumOf(resp.Body)
	resp.Body.Close()
	if err != nil || n != size || got != want {
		t.Fatalf("download: %d bytes, sum %s, err %v; want %d bytes, sum %s", n, got, err, size, want)
	}

	upWant, _, _ := testutil.SumOf(io.LimitReader(testutil.RandReader(9), size))
	req, _ := http.NewRequest("POST", url+"/upload", io.LimitReader(testutil.RandReader(9), size))
	req.ContentLength = size
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != fmt.Sprintf("%s %d", upWant, size) {
		t.Fatalf("upload: service saw %q, want %q", body, fmt.Sprintf("%s %d", upWant, size))
	}
}

func TestHTTPForwardedHeaders(t *testing.T) {
	e := startEdge(t, nil)
	local := fileServer(t)
	as, _ := runAgent(t, e, nil, Tunnel{Kind: control.KindHTTP, Name: "hdr", Local: local.Listener.Addr().String()})
	c := clientFor(e)
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest("GET", as[0].URL+"/headers", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6") // a client must not be able to spoof it
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	host := strings.TrimPrefix(as[0].URL, "http://")
	for _, want := range []string{"X-Forwarded-For=127.0.0.1\n", "X-Forwarded-Host=" + host + "\n", "X-Forwarded-Proto=http\n", "Host=" + host + "\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("local service saw headers:\n%s\nmissing %q", body, want)
		}
	}
}

func TestWebSocketEcho(t *testing.T) {
	e := startEdge(t, nil)
	local := fileServer(t)
	as, _ := runAgent(t, e, nil, Tunnel{Kind: control.KindHTTP, Name: "ws", Local: local.Listener.Addr().String(), LogRequests: true})
	conn, err := net.Dial("tcp", e.srv.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	host := strings.TrimPrefix(as[0].URL, "http://")
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", host)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: status %d, want 101", resp.StatusCode)
	}
	for i := 0; i < 100; i++ {
		msg := fmt.Sprintf("message %d through the upgraded tunnel", i)
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
		if string(buf) != msg {
			t.Fatalf("echo %d: got %q", i, buf)
		}
	}
}

func TestLocalServiceDownGives502(t *testing.T) {
	e := startEdge(t, nil)
	// A port with nothing listening: bind one, then free it.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	as, _ := runAgent(t, e, nil, Tunnel{Kind: control.KindHTTP, Name: "down", Local: dead, LogRequests: true})
	c := clientFor(e)
	defer c.CloseIdleConnections()
	for i := 0; i < 3; i++ {
		resp, err := c.Get(as[0].URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), dead) {
			t.Fatalf("status %d, body %q; want 502 naming %s", resp.StatusCode, body, dead)
		}
	}
}

func TestUnknownHostGives404(t *testing.T) {
	e := startEdge(t, nil)
	c := clientFor(e)
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://nobody.localhost/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "nobody.localhost") {
		t.Fatalf("status %d, body %q; want 404 naming the host", resp.StatusCode, body)
	}
	for _, u := range []string{"http://anything.localhost/_sluice/healthz", "http://localhost/healthz"} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok\n" {
			t.Fatalf("%s: %d %q, want 200 ok", u, resp.StatusCode, body)
		}
	}
}

func TestSlowlorisIsCutOff(t *testing.T) {
	e := startEdge(t, func(c *server.Config) { c.ReadHeaderTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", e.srv.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x.localhost\r\n")
	// Trickle header bytes; the edge must hang up well before we finish.
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	var werr error
	for i := 0; i < 200 && werr == nil; i++ {
		_, werr = io.WriteString(conn, "X-A: b\r\n")
		time.Sleep(50 * time.Millisecond)
		conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [1]byte
		if _, err := conn.Read(b[:]); err != nil && !isTimeout(err) {
			werr = err
		}
	}
	if werr == nil {
		t.Fatal("the edge kept a connection that sent headers for 10 s")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestHTTPRawPipe: an HTTP tunnel that does not log requests pipes bytes to
// the local service; a dead service shows as the edge's 502 page.
func TestHTTPRawPipe(t *testing.T) {
	e := startEdge(t, nil)
	local := fileServer(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	as, _ := runAgent(t, e, nil,
		Tunnel{Kind: control.KindHTTP, Name: "raw", Local: local.Listener.Addr().String()},
		Tunnel{Kind: control.KindHTTP, Name: "rawdead", Local: dead})
	urls := map[string]string{}
	for _, a := range as {
		urls[a.Name] = a.URL
	}
	c := clientFor(e)
	defer c.CloseIdleConnections()
	for i := 0; i < 3; i++ { // keep-alive: later requests reuse the stream
		if code, body := getBody(t, c, urls["raw"]+"/"); code != 200 || body != "hello from the local service" {
			t.Fatalf("raw pipe GET: %d %q", code, body)
		}
	}
	code, body := getBody(t, c, urls["rawdead"]+"/")
	if code != http.StatusBadGateway || !strings.Contains(body, "could not reach the local service") {
		t.Fatalf("raw pipe to a dead service: %d %q, want the edge's 502 page", code, body)
	}
}
