package server

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/transport"
)

// metricsEdge starts an edge with metrics and the admin view on, and serves
// its registry over HTTP the way cmd/sluice does.
func metricsEdge(t *testing.T) (s *Server, metricsURL string) {
	reg := prometheus.NewRegistry()
	s = startServer(t, func(c *Config) {
		c.Metrics = reg
		c.Admin, c.AdminToken = "127.0.0.1:0", "admin-secret"
	})
	return s, testutil.ServeMetrics(t, reg)
}

func register(t *testing.T, ctrl io.ReadWriter, r control.Register) control.Assigned {
	t.Helper()
	send(t, ctrl, r)
	m, err := control.ReadMessage(ctrl)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := m.(control.Assigned)
	if !ok {
		t.Fatalf("want assigned, got %#v", m)
	}
	return a
}

// TestMetricsMoveDuringTCPTransfer: the per-tunnel byte counters and stream
// gauges show a TCP connection's traffic while it is still open.
func TestMetricsMoveDuringTCPTransfer(t *testing.T) {
	s, url := metricsEdge(t)
	sess, ctrl := handshake(t, s)
	a := register(t, ctrl, control.Register{Ref: 1, Kind: control.KindTCP, Name: "db"})

	sc := testutil.ScrapeMetrics(t, url)
	if v := sc.Must(t, "sluice_edge_sessions"); v != 1 {
		t.Fatalf("sluice_edge_sessions = %v, want 1", v)
	}
	if v := sc.Must(t, "sluice_edge_tunnels", "kind", "tcp"); v != 1 {
		t.Fatalf("tcp tunnels = %v, want 1", v)
	}
	if v := sc.Must(t, "sluice_edge_tunnel_bytes_total", "tunnel", "db", "direction", "in"); v != 0 {
		t.Fatalf("bytes in before traffic = %v", v)
	}

	pub, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(a.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pub.SetDeadline(time.Now().Add(10 * time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := sess.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := control.ReadHeader(st); err != nil {
		t.Fatal(err)
	}
	// Several chunks each way, scraping between them: the counters follow.
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for i := 1; i <= 3; i++ {
		if _, err := pub.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(st, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write(buf[:chunk/2]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(pub, buf[:chunk/2]); err != nil {
			t.Fatal(err)
		}
		sc := testutil.AwaitMetrics(t, url, testutil.AllOf(
			testutil.MetricEqual(float64(i*chunk), "sluice_edge_tunnel_bytes_total", "tunnel", "db", "direction", "in"),
			testutil.MetricEqual(float64(i*chunk/2), "sluice_edge_tunnel_bytes_total", "tunnel", "db", "direction", "out"),
		))
		if v := sc.Must(t, "sluice_edge_tunnel_streams_open", "tunnel", "db"); v != 1 {
			t.Fatalf("open streams = %v, want 1", v)
		}
	}

	// The admin listing agrees, behind its token.
	status := adminGet(t, s, "admin-secret")
	if len(status.Tunnels) != 1 || status.Tunnels[0].BytesIn != 3*chunk || status.Tunnels[0].OpenStreams != 1 {
		t.Fatalf("admin tunnels = %+v", status.Tunnels)
	}
	if len(status.Agents) != 1 || status.Agents[0].RemoteAddr == "" || status.Agents[0].ConnectedSince.IsZero() || status.Totals.Sessions != 1 {
		t.Fatalf("admin agents = %+v totals %+v", status.Agents, status.Totals)
	}
}

func adminGet(t *testing.T, s *Server, token string) AdminStatus {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.AdminAddr().String()+"/api/status", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("admin status: %s", resp.Status)
	}
	var st AdminStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAdminRequiresToken(t *testing.T) {
	s, _ := metricsEdge(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, auth := range []string{"", "Bearer wrong", "admin-secret"} {
		for path, want := range map[string]int{"/api/status": http.StatusUnauthorized, "/api/snapshot": http.StatusUnauthorized, "/": http.StatusSeeOther} {
			req, _ := http.NewRequest("GET", "http://"+s.AdminAddr().String()+path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%s with Authorization %q: %s, want %d", path, auth, resp.Status, want)
			}
			// The console's pages send a browser to its sign-in form.
			if want == http.StatusSeeOther && !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
				t.Errorf("%s with Authorization %q: redirected to %q, want the sign-in form", path, auth, resp.Header.Get("Location"))
			}
		}
	}
	_, err := New(Config{Listen: "127.0.0.1:0", Tokens: []string{"T"}, Admin: "127.0.0.1:0"})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "AdminToken" {
		t.Fatalf("admin without a token: %v, want a ConfigError naming AdminToken", err)
	}
}

// TestMetricsCountHTTPRequestsAndRefusals: requests by status class and
// duration per tunnel, and refused sessions and registrations by reason.
func TestMetricsCountHTTPRequestsAndRefusals(t *testing.T) {
	s, url := metricsEdge(t)
	sess, ctrl := handshake(t, s)
	register(t, ctrl, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "web"})
	// The agent half: answer each proxied request with the status its path
	// names.
	go func() {
		for {
			st, err := sess.AcceptStream(context.Background())
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				if _, err := control.ReadHeader(st); err != nil {
					return
				}
				br := bufio.NewReader(st)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					code, _ := strconv.Atoi(req.URL.Path[1:])
					fmt.Fprintf(st, "HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\nok", code)
				}
			}()
		}
	}()
	for _, code := range []int{200, 201, 404, 503} {
		req, _ := http.NewRequest("GET", "http://"+s.HTTPAddr().String()+"/"+strconv.Itoa(code), nil)
		req.Host = "web.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Fatalf("GET /%d: %s", code, resp.Status)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	// One wrong token, one name taken by another token.
	_, ctrl2 := rawAgent(t, s)
	send(t, ctrl2, control.Hello{Version: control.Version}, control.Auth{Token: "nope"})
	expectError(t, ctrl2, control.CodeUnauthorized)
	send(t, ctrl, control.Register{Ref: 2, Kind: control.KindHTTP, Name: "bad_name"})
	expectError(t, ctrl, control.CodeBadRequest)

	sc := testutil.ScrapeMetrics(t, url)
	for class, want := range map[string]float64{"2xx": 2, "4xx": 1, "5xx": 1} {
		if v := sc.Must(t, "sluice_edge_http_requests_total", "tunnel", "web.localhost", "class", class); v != want {
			t.Errorf("requests %s = %v, want %v", class, v, want)
		}
	}
	if v := sc.Must(t, "sluice_edge_http_request_duration_seconds_count", "tunnel", "web.localhost"); v != 4 {
		t.Errorf("duration count = %v, want 4", v)
	}
	if v := sc.Must(t, "sluice_edge_registrations_refused_total", "reason", control.CodeUnauthorized); v != 1 {
		t.Errorf("refused unauthorized = %v, want 1", v)
	}
	if v := sc.Must(t, "sluice_edge_registrations_refused_total", "reason", control.CodeBadRequest); v != 1 {
		t.Errorf("refused bad request = %v, want 1", v)
	}
	if v := sc.Must(t, "sluice_edge_tunnel_bytes_total", "tunnel", "web", "direction", "out"); v < 4*2 {
		t.Errorf("http bytes out = %v, want at least the bodies", v)
	}
	if v := sc.Must(t, "sluice_edge_session_rtt_seconds_count"); v != 1 {
		t.Errorf("rtt observations = %v, want one per session", v)
	}
}

// TestMetricsCertificateExpiry: the agent listener's and the HTTPS
// ingress's certificates are exported with their expiry.
func TestMetricsCertificateExpiry(t *testing.T) {
	ca, err := transport.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	agentCert, err := ca.Issue("edge.test")
	if err != nil {
		t.Fatal(err)
	}
	httpsCert, err := ca.Issue("*.localhost")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := transport.WritePEMFiles(t.TempDir(), "https", httpsCert)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := transport.ServerTLS{Certificate: &agentCert}.Config()
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	startServer(t, func(c *Config) {
		c.Metrics, c.TLS = reg, tlsCfg
		c.HTTPS, c.HTTPSCertFile, c.HTTPSKeyFile = "127.0.0.1:0", certFile, keyFile
	})
	sc := testutil.ScrapeMetrics(t, testutil.ServeMetrics(t, reg))
	leaf, _ := x509.ParseCertificate(agentCert.Certificate[0])
	if v := sc.Must(t, "sluice_edge_certificate_expiry_timestamp_seconds", "listener", "agents"); v != float64(leaf.NotAfter.Unix()) {
		t.Errorf("agents certificate expiry = %v, want %d", v, leaf.NotAfter.Unix())
	}
	leaf, _ = x509.ParseCertificate(httpsCert.Certificate[0])
	if v := sc.Must(t, "sluice_edge_certificate_expiry_timestamp_seconds", "listener", "https"); v != float64(leaf.NotAfter.Unix()) {
		t.Errorf("https certificate expiry = %v, want %d", v, leaf.NotAfter.Unix())
	}
}

// TestMetricsCountUDPDatagrams: a UDP tunnel's payload bytes show both ways.
func TestMetricsCountUDPDatagrams(t *testing.T) {
	s, url := metricsEdge(t)
	sess, m := udpAgent(t, s, control.Register{Ref: 1, Kind: control.KindUDP, Name: "dns"})
	a, ok := m.(control.Assigned)
	if !ok {
		t.Fatalf("want assigned, got %#v", m)
	}
	pc, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(a.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := pc.Write([]byte("query-of-17-bytes")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := sess.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := control.ReadHeader(st); err != nil {
		t.Fatal(err)
	}
	n, err := control.ReadDatagramLen(st)
	if err != nil || n != 17 {
		t.Fatalf("datagram of %d bytes, %v", n, err)
	}
	io.ReadFull(st, make([]byte, n))
	reply, _ := control.AppendDatagram(nil, []byte("answer-9b"))
	if _, err := st.Write(reply); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	testutil.AwaitMetrics(t, url, testutil.AllOf(
		testutil.MetricEqual(17, "sluice_edge_tunnel_bytes_total", "tunnel", "dns", "direction", "in"),
		testutil.MetricEqual(9, "sluice_edge_tunnel_bytes_total", "tunnel", "dns", "direction", "out"),
		testutil.MetricEqual(1, "sluice_edge_tunnels", "kind", "udp"),
	))
}
