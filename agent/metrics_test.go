package agent

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/proxyproto"
	"github.com/sluicehq/sluice/internal/testutil"
)

// TestAgentMetricsMoveDuringLongTransfer: a TCP tunnel's byte counters move
// while one connection is still open, and HTTP requests are counted by
// status class.
func TestAgentMetricsMoveDuringLongTransfer(t *testing.T) {
	e := startEdge(t, nil)
	local := testutil.EchoServer(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "hello")
	}))
	defer web.Close()
	reg := prometheus.NewRegistry()
	url := testutil.ServeMetrics(t, reg)
	as, _ := runAgent(t, e, func(c *Config) { c.Metrics = reg },
		Tunnel{Kind: control.KindTCP, Name: "echo", Local: local},
		Tunnel{Kind: control.KindHTTP, Name: "web", Local: web.Listener.Addr().String(), LogRequests: true})

	sc := testutil.AwaitMetrics(t, url, testutil.MetricEqual(1, "sluice_agent_session_connected"))
	if v := sc.Must(t, "sluice_agent_tunnels", "kind", "tcp"); v != 1 {
		t.Fatalf("tcp tunnels = %v", v)
	}

	c, err := net.Dial("tcp", tcpAddrOf(t, as[0].URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 256<<10)
	var last float64
	for i := 1; i <= 4; i++ {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		n := float64(i * len(buf))
		sc := testutil.AwaitMetrics(t, url, testutil.AllOf(
			testutil.MetricEqual(n, "sluice_agent_tunnel_bytes_total", "tunnel", "echo", "direction", "in"),
			testutil.MetricEqual(n, "sluice_agent_tunnel_bytes_total", "tunnel", "echo", "direction", "out"),
		))
		if v := sc.Must(t, "sluice_agent_streams_open"); v < 1 {
			t.Fatalf("streams_open = %v during a transfer", v)
		}
		in := sc.Must(t, "sluice_agent_tunnel_bytes_total", "tunnel", "echo", "direction", "in")
		last = in
	}
	if last == 0 {
		t.Fatal("no bytes counted")
	}

	hc := clientFor(e)
	for _, p := range []string{"/", "/", "/missing"} {
		code, _ := getBody(t, hc, as[1].URL+p)
		if code == 0 {
			t.Fatalf("GET %s failed", p)
		}
	}
	sc = testutil.ScrapeMetrics(t, url)
	if v := sc.Must(t, "sluice_agent_http_requests_total", "tunnel", "web", "class", "2xx"); v != 2 {
		t.Errorf("2xx = %v, want 2", v)
	}
	if v := sc.Must(t, "sluice_agent_http_requests_total", "tunnel", "web", "class", "4xx"); v != 1 {
		t.Errorf("4xx = %v, want 1", v)
	}
	if v := sc.Must(t, "sluice_agent_http_request_duration_seconds_count", "tunnel", "web"); v != 3 {
		t.Errorf("duration count = %v, want 3", v)
	}
	if v := sc.Must(t, "sluice_agent_tunnel_bytes_total", "tunnel", "web", "direction", "out"); v < 15 {
		t.Errorf("http bytes out = %v", v)
	}
}

// TestAgentMetricsCountReconnects: a session killed under the agent shows as
// a reconnect with its cause, and the gauges follow the new session.
func TestAgentMetricsCountReconnects(t *testing.T) {
	e := startEdge(t, nil)
	p := newKillProxy(t, e.srv.Addr().String())
	reg := prometheus.NewRegistry()
	url := testutil.ServeMetrics(t, reg)
	assignedAgain := make(chan struct{}, 4)
	runAgent(t, e, func(c *Config) {
		c.Server = p.addr()
		c.Metrics = reg
		c.Backoff = Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}
		prev := c.OnAssigned
		c.OnAssigned = func(i int, a control.Assigned) {
			prev(i, a)
			select {
			case assignedAgain <- struct{}{}:
			default:
			}
		}
	}, Tunnel{Kind: control.KindTCP, Local: testutil.EchoServer(t)})
	<-assignedAgain
	p.kill()
	select {
	case <-assignedAgain:
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not re-register within 10 s")
	}
	sc := testutil.ScrapeMetrics(t, url)
	if v, _ := sc.Value("sluice_agent_reconnects_total"); v < 1 {
		t.Fatalf("reconnects_total = %v after a killed session", v)
	}
	if v := sc.Must(t, "sluice_agent_reconnects_total", "cause", "network"); v < 1 {
		t.Fatalf("a reset connection is not counted as cause network: %v", v)
	}
	// OnAssigned runs just before the session counts as live.
	testutil.AwaitMetrics(t, url, testutil.MetricEqual(1, "sluice_agent_session_connected"))
}

// TestAgentMetricsCountUDP: a UDP tunnel's datagram bytes show both ways.
func TestAgentMetricsCountUDP(t *testing.T) {
	svc := startDNSService(t)
	e := startEdge(t, nil)
	reg := prometheus.NewRegistry()
	url := testutil.ServeMetrics(t, reg)
	as, _ := runAgent(t, e, func(c *Config) { c.Metrics = reg }, Tunnel{Kind: control.KindUDP, Name: "dns", Local: svc.pc.LocalAddr().String()})
	c, err := net.DialUDP("udp", nil, udpAddrOf(t, as[0].URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := exchange(c, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	// A lost datagram is resent, so at least 100 bytes each way.
	testutil.AwaitMetrics(t, url, func(s testutil.Scrape) error {
		for _, dir := range []string{"in", "out"} {
			v, _ := s.Value("sluice_agent_tunnel_bytes_total", "tunnel", "dns", "direction", dir)
			if v < 100 || int(v)%100 != 0 {
				return fmt.Errorf("udp bytes %s = %v, want a multiple of the 100-byte datagram", dir, v)
			}
		}
		return nil
	})
}

// TestHTTPMiddlewareLeavesPROXYTunnelsPiped: a tunnel that starts each
// connection with a PROXY header keeps piping bytes when an HTTP middleware
// (the inspector) is configured, and the middleware does not see it.
func TestHTTPMiddlewareLeavesPROXYTunnelsPiped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RemoteAddr)
	})}
	pl := &proxyproto.Listener{Listener: ln, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	go srv.Serve(pl)
	t.Cleanup(func() { srv.Close() })
	e := startEdge(t, nil)
	var wrapped atomic.Int64
	runAgent(t, e, func(c *Config) {
		c.HTTPMiddleware = func(_ int, next http.Handler) http.Handler {
			wrapped.Add(1)
			return next
		}
	}, Tunnel{Kind: control.KindHTTP, Name: "pp", Local: ln.Addr().String(), ProxyProtocol: "v1"})
	c, err := net.Dial("tcp", e.srv.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: pp.localhost\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != c.LocalAddr().String() {
		t.Fatalf("local service saw %q, want the client %s from the PROXY header", b, c.LocalAddr())
	}
	if wrapped.Load() != 0 {
		t.Fatal("the middleware wrapped a tunnel that must pipe bytes")
	}
}
