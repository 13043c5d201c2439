package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

// seenHeaders sends one request with the given headers through tunnel "h"
// and returns the forwarding headers the local service saw.
func seenHeaders(t *testing.T, srv *server.Server, hdr map[string]string) map[string]string {
	t.Helper()
	port := srv.HTTPAddr().(*net.TCPAddr).Port
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://h.localhost:%d/", port), nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := viaEdge(t, srv.HTTPAddr().String()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	return got
}

var forged = map[string]string{
	"X-Forwarded-For":   "203.0.113.7",
	"X-Forwarded-Proto": "https",
	"X-Forwarded-Host":  "evil.example",
	"Forwarded":         "for=203.0.113.7;proto=https",
	"X-Real-Ip":         "203.0.113.7",
}

func TestForwardingHeadersFromAnUntrustedClientAreReplaced(t *testing.T) {
	srv := startEdge(t, nil)
	startAgent(t, srv, agent.Tunnel{Kind: control.KindHTTP, Name: "h", Local: localHTTP(t, headerEcho()), LogRequests: true})
	host := fmt.Sprintf("h.localhost:%d", srv.HTTPAddr().(*net.TCPAddr).Port)
	got := seenHeaders(t, srv, forged)
	want := map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  host,
		"Forwarded":         `for=127.0.0.1;host="` + host + `";proto=http`,
		"X-Real-Ip":         "127.0.0.1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: local service saw %q, want %q", k, got[k], v)
		}
	}
}

func TestForwardingHeadersFromATrustedProxyAreExtended(t *testing.T) {
	srv := startEdge(t, func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	startAgent(t, srv, agent.Tunnel{Kind: control.KindHTTP, Name: "h", Local: localHTTP(t, headerEcho()), LogRequests: true})
	host := fmt.Sprintf("h.localhost:%d", srv.HTTPAddr().(*net.TCPAddr).Port)
	got := seenHeaders(t, srv, forged)
	want := map[string]string{
		"X-Forwarded-For":   "203.0.113.7, 127.0.0.1",
		"X-Forwarded-Proto": "https",
		"X-Forwarded-Host":  "evil.example",
		"Forwarded":         `for=203.0.113.7;proto=https, for=127.0.0.1;host="` + host + `";proto=http`,
		"X-Real-Ip":         "203.0.113.7",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: local service saw %q, want %q", k, got[k], v)
		}
	}
	// Without an X-Real-IP of its own, the real client is the first hop
	// of X-Forwarded-For that no trusted proxy vouches for.
	got = seenHeaders(t, srv, map[string]string{"X-Forwarded-For": "198.51.100.1, 203.0.113.9, 127.0.0.5"})
	if got["X-Real-Ip"] != "203.0.113.9" {
		t.Errorf("X-Real-IP %q, want 203.0.113.9 (the last untrusted hop)", got["X-Real-Ip"])
	}
}
