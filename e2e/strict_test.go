package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

// rawExchange writes req on a fresh connection to the edge and reads every
// response until the edge closes the connection.
func rawExchange(t *testing.T, addr, req string) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []*http.Response
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the edge kept the connection open after %d responses", len(out))
			}
			return out // EOF: the edge closed the connection
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, resp)
	}
}

// countingTunnels registers tunnels a and b, each counting its requests.
func countingTunnels(t *testing.T, mod func(*server.Config)) (srv *server.Server, a, b *atomic.Int32) {
	t.Helper()
	a, b = new(atomic.Int32), new(atomic.Int32)
	count := func(n *atomic.Int32) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			n.Add(1)
			fmt.Fprint(w, "ok")
		})
	}
	srv = startEdge(t, mod)
	startAgent(t, srv,
		agent.Tunnel{Kind: control.KindHTTP, Name: "a", Local: localHTTP(t, count(a)), LogRequests: true},
		agent.Tunnel{Kind: control.KindHTTP, Name: "b", Local: localHTTP(t, count(b)), LogRequests: true})
	return srv, a, b
}

func TestContentLengthWithTransferEncodingClosesTheConnection(t *testing.T) {
	srv, a, b := countingTunnels(t, nil)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: b.localhost\r\n\r\n"
	for name, te := range map[string]string{
		"plain":      "Transfer-Encoding: chunked\r\n",
		"obs-folded": "Transfer-Encoding:\r\n chunked\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			before := a.Load()
			req := "POST /upload HTTP/1.1\r\nHost: a.localhost\r\nContent-Length: 48\r\n" + te + "\r\n0\r\n\r\n" + smuggled
			resps := rawExchange(t, srv.HTTPAddr().String(), req)
			if len(resps) != 1 {
				t.Fatalf("%d responses, want exactly one and the connection closed", len(resps))
			}
			if resps[0].StatusCode != 200 || a.Load() != before+1 {
				t.Fatalf("the request itself was not answered by its tunnel: %s", resps[0].Status)
			}
			if n := b.Load(); n != 0 {
				t.Fatalf("the bytes after the body reached tunnel b as %d request(s)", n)
			}
		})
	}
}

func TestHostWithInvalidPortIsRefused(t *testing.T) {
	srv, a, _ := countingTunnels(t, nil)
	for _, host := range []string{"a.localhost:abc", "a.localhost:99999", "a.localhost:0", "a.localhost:"} {
		resps := rawExchange(t, srv.HTTPAddr().String(), "GET / HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
		if len(resps) != 1 || resps[0].StatusCode != http.StatusBadRequest {
			t.Fatalf("Host %q: got %d responses (%v), want one 400 and the connection closed", host, len(resps), statuses(resps))
		}
	}
	if n := a.Load(); n != 0 {
		t.Fatalf("a request with a bad Host reached the tunnel %d time(s)", n)
	}
	resps := rawExchange(t, srv.HTTPAddr().String(), "GET / HTTP/1.1\r\nHost: a.localhost:8080\r\nConnection: close\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Fatalf("a valid port was refused: %v", statuses(resps))
	}
}

func TestConnectIsRefused(t *testing.T) {
	srv, a, _ := countingTunnels(t, nil)
	resps := rawExchange(t, srv.HTTPAddr().String(), "CONNECT a.localhost:443 HTTP/1.1\r\nHost: a.localhost:443\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("CONNECT got %v, want 405", statuses(resps))
	}
	if a.Load() != 0 {
		t.Fatal("CONNECT reached the tunnel")
	}
}

func statuses(rs []*http.Response) []string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Status)
	}
	return s
}

// headerEcho answers with the request headers the local service saw.
func headerEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "X-Real-Ip"} {
			fmt.Fprintf(w, "%s=%s\n", k, strings.Join(r.Header.Values(k), "|"))
		}
		fmt.Fprintf(w, "Host=%s\n", r.Host)
	})
}
