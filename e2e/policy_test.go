package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/agent/inspect"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/edgetest"
	"github.com/sluicehq/sluice/internal/oidctest"
	"github.com/sluicehq/sluice/internal/proxyproto"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/server"
)

// countingListener counts the connections the local service accepted: on
// a tunnel that pipes bytes (LogRequests false), every stream the edge
// opens becomes one, so zero accepts means zero streams reached the agent.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func countingHTTP(t *testing.T, h http.Handler) (string, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	s := &http.Server{Handler: h}
	go s.Serve(cl)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String(), cl
}

func mustSpec(t *testing.T, s policy.Simple) *policy.Spec {
	t.Helper()
	spec, err := s.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// policyEvents collects what the edge told the agent about refusals.
type policyEvents struct {
	mu  sync.Mutex
	got []control.PolicyRefused
}

func (e *policyEvents) hook(_ int, m control.PolicyRefused) {
	e.mu.Lock()
	e.got = append(e.got, m)
	e.mu.Unlock()
}

// await waits (bounded) until the events for rule add up to n.
func (e *policyEvents) await(t *testing.T, rule string, n uint64) control.PolicyRefused {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.mu.Lock()
		var sum uint64
		var first control.PolicyRefused
		for _, m := range e.got {
			if m.Rule == rule {
				if sum == 0 {
					first = m
				}
				sum += m.Count
			}
		}
		e.mu.Unlock()
		if sum >= n {
			return first
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent heard of %d refusals by rule %q within 10 s, want %d", sum, rule, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startPolicyAgent(t *testing.T, srv *server.Server, ev *policyEvents, tunnels ...agent.Tunnel) []control.Assigned {
	t.Helper()
	as := edgetest.NewAssignments()
	cfg := agent.Config{Server: srv.Addr().String(), Token: token, Tunnels: tunnels, OnAssigned: as.Hook}
	if ev != nil {
		cfg.OnPolicyRefused = ev.hook
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	assigned, _ := edgetest.RunAgent(t, a, as, len(tunnels))
	return assigned
}

// counter sums a counter of reg whose labels include kv.
func counter(t *testing.T, reg *prometheus.Registry, name string, kv ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(kv); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func policyGet(t *testing.T, c *http.Client, url string, mod func(*http.Request)) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if mod != nil {
		mod(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestPolicyRefusesAtTheEdgeBeforeAStreamOpens: basic auth, IP rules and a
// rate limit sent in the agent's registration are enforced by the edge;
// refused requests never open a stream to the agent, and the agent hears
// of them as counts naming the rule.
func TestPolicyRefusesAtTheEdgeBeforeAStreamOpens(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := startEdge(t, func(c *server.Config) { c.Metrics = reg })
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "app saw auth="+r.Header.Get("Authorization"))
	})
	authAddr, authLn := countingHTTP(t, ok)
	officeAddr, officeLn := countingHTTP(t, ok)
	limitAddr, limitLn := countingHTTP(t, ok)
	ev := &policyEvents{}
	assigned := startPolicyAgent(t, srv, ev,
		agent.Tunnel{Kind: control.KindHTTP, Name: "auth", Local: authAddr,
			Policy: mustSpec(t, policy.Simple{BasicAuth: []string{"alice:s3cret"}, AllowCIDRs: []string{"127.0.0.0/8", "::1"}})},
		agent.Tunnel{Kind: control.KindHTTP, Name: "office", Local: officeAddr,
			Policy: mustSpec(t, policy.Simple{AllowCIDRs: []string{"10.0.0.0/8"}})},
		agent.Tunnel{Kind: control.KindHTTP, Name: "limited", Local: limitAddr,
			Policy: mustSpec(t, policy.Simple{RateLimit: "3/1m"})},
	)
	for _, a := range assigned {
		if a.Policy == "" {
			t.Fatalf("the edge did not confirm the policy of %s", a.URL)
		}
	}
	c := viaEdge(t, srv.HTTPAddr().String())

	// Basic auth: three refusals, no stream; then the right password passes.
	for range 3 {
		resp := policyGet(t, c, "http://auth.localhost/", nil)
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic realm=") {
			t.Fatalf("no credentials: %d %v", resp.StatusCode, resp.Header)
		}
	}
	resp := policyGet(t, c, "http://auth.localhost/", func(r *http.Request) { r.SetBasicAuth("alice", "wrong") })
	if resp.StatusCode != 401 {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	if n := authLn.n.Load(); n != 0 {
		t.Fatalf("refused requests opened %d streams to the agent, want 0", n)
	}
	req, _ := http.NewRequest("GET", "http://auth.localhost/", nil)
	req.SetBasicAuth("alice", "s3cret")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "app saw auth=" {
		t.Fatalf("right password: %d %q", resp.StatusCode, body)
	}
	if authLn.n.Load() == 0 {
		t.Fatal("the admitted request never reached the local service")
	}

	// IP rules on the real client address: loopback is not in 10.0.0.0/8.
	for range 2 {
		if resp := policyGet(t, c, "http://office.localhost/", nil); resp.StatusCode != 403 {
			t.Fatalf("outside the allowed network: %d", resp.StatusCode)
		}
	}
	if n := officeLn.n.Load(); n != 0 {
		t.Fatalf("refused requests opened %d streams, want 0", n)
	}

	// Rate limit: three pass, the fourth is 429 with Retry-After.
	for i := range 3 {
		if resp := policyGet(t, c, "http://limited.localhost/", nil); resp.StatusCode != 200 {
			t.Fatalf("request %d under the limit: %d", i+1, resp.StatusCode)
		}
	}
	before := limitLn.n.Load()
	resp = policyGet(t, c, "http://limited.localhost/", nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if limitLn.n.Load() != before {
		t.Fatal("a rate-limited request opened a stream")
	}

	// The agent heard of every refusal, by rule, without a body.
	first := ev.await(t, "basic-auth", 4)
	if first.Action != "basic-auth" || first.Source != "agent" || first.Status != 401 || first.Path != "/" || first.Client != "127.0.0.1" {
		t.Fatalf("event %+v", first)
	}
	ev.await(t, "restrict-ips", 2)
	ev.await(t, "rate-limit", 1)
	if n := counter(t, reg, "sluice_edge_policy_refused_total", "kind", "http", "action", "basic-auth"); n != 4 {
		t.Fatalf("edge counted %v basic-auth refusals, want 4", n)
	}
	// The admin listing and the metrics name the rules, never the password.
	st, _ := json.Marshal(srv.Status())
	if !strings.Contains(string(st), "basic-auth") || strings.Contains(string(st), "s3cret") {
		t.Fatalf("admin listing: %s", st)
	}
	mfs, _ := reg.Gather()
	if m, _ := json.Marshal(mfs); strings.Contains(string(m), "s3cret") {
		t.Fatal("a secret in the metrics")
	}
}

// TestPolicyIPRulesUseTheRealClient: behind a load balancer's PROXY header
// or a trusted proxy's X-Forwarded-For, IP rules judge the client they
// name, not the proxy.
func TestPolicyIPRulesUseTheRealClient(t *testing.T) {
	srv := startEdge(t, func(c *server.Config) {
		c.AcceptProxyProtocol = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	addr, _ := countingHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "in") }))
	startPolicyAgent(t, srv, nil, agent.Tunnel{Kind: control.KindHTTP, Name: "office", Local: addr,
		Policy: mustSpec(t, policy.Simple{AllowCIDRs: []string{"10.0.0.0/8"}, DenyCIDRs: []string{"10.66.0.0/16"}})})

	// Through a trusted proxy (127.0.0.1): X-Forwarded-For names the client.
	c := viaEdge(t, srv.HTTPAddr().String())
	for xff, want := range map[string]int{"10.1.2.3": 200, "192.0.2.1": 403, "10.66.1.1": 403, "203.0.113.9, 10.1.2.3": 200} {
		if resp := policyGet(t, c, "http://office.localhost/", func(r *http.Request) { r.Header.Set("X-Forwarded-For", xff) }); resp.StatusCode != want {
			t.Errorf("X-Forwarded-For %s: %d, want %d", xff, resp.StatusCode, want)
		}
	}

	// Through a load balancer (127.0.0.2) speaking the PROXY protocol.
	for src, want := range map[string]int{"10.9.8.7:4000": 200, "198.51.100.7:4000": 403} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
		conn, err := d.Dial("tcp", srv.HTTPAddr().String())
		if err != nil {
			t.Skipf("cannot dial from 127.0.0.2 on this machine: %v", err)
		}
		hdr := proxyproto.Append(nil, proxyproto.V1, netip.MustParseAddrPort(src), netip.MustParseAddrPort(srv.HTTPAddr().String()))
		conn.Write(hdr)
		conn.Write([]byte("GET / HTTP/1.1\r\nHost: office.localhost\r\nConnection: close\r\n\r\n"))
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(conn)
		conn.Close()
		if !strings.HasPrefix(string(b), "HTTP/1.1 "+strconv.Itoa(want)) {
			t.Errorf("PROXY header naming %s: %q, want %d", src, firstLine(b), want)
		}
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}

// TestPolicyTCPAndUDPRefusals: a refused TCP client's connection is closed
// before a stream opens; a refused UDP datagram is dropped; both counted.
func TestPolicyTCPAndUDPRefusals(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := startEdge(t, func(c *server.Config) { c.Metrics = reg })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	defer cl.Close()
	go func() {
		for {
			c, err := cl.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	var udpGot atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := udp.ReadFrom(buf); err != nil {
				return
			}
			udpGot.Add(1)
		}
	}()
	ev := &policyEvents{}
	assigned := startPolicyAgent(t, srv, ev,
		agent.Tunnel{Kind: control.KindTCP, Name: "ssh", Local: ln.Addr().String(),
			Policy: mustSpec(t, policy.Simple{RateLimit: "2/1m"})},
		agent.Tunnel{Kind: control.KindTCP, Name: "closed", Local: ln.Addr().String(),
			Policy: mustSpec(t, policy.Simple{DenyCIDRs: []string{"127.0.0.0/8"}})},
		agent.Tunnel{Kind: control.KindUDP, Name: "dns", Local: udp.LocalAddr().String(),
			Policy: mustSpec(t, policy.Simple{AllowCIDRs: []string{"10.0.0.0/8"}})},
	)
	addrOf := func(u string) string { return u[strings.Index(u, "://")+3:] }
	echo := func(addr string) error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		return nil
	}
	ssh, closed, dns := addrOf(assigned[0].URL), addrOf(assigned[1].URL), addrOf(assigned[2].URL)
	if err := echo(closed); err == nil {
		t.Fatal("a denied client was served")
	}
	if n := cl.n.Load(); n != 0 {
		t.Fatalf("a refused TCP connection opened %d streams", n)
	}
	for i := range 2 {
		if err := echo(ssh); err != nil {
			t.Fatalf("connection %d under the limit: %v", i+1, err)
		}
	}
	if err := echo(ssh); err == nil || !(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "reset")) {
		t.Fatalf("the third connection within a minute: %v, want it closed", err)
	}
	if n := cl.n.Load(); n != 2 {
		t.Fatalf("the local service accepted %d connections, want 2", n)
	}

	c, err := net.Dial("udp", dns)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("query"))
	deadline := time.Now().Add(10 * time.Second)
	for counter(t, reg, "sluice_edge_policy_refused_total", "kind", "udp") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the refused datagram was not counted within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if udpGot.Load() != 0 {
		t.Fatal("a datagram from a refused address reached the local service")
	}
	if n := counter(t, reg, "sluice_edge_policy_refused_total", "kind", "tcp"); n != 2 {
		t.Fatalf("edge counted %v TCP refusals, want 2", n)
	}
	if e := ev.await(t, "restrict-ips", 1); e.Status != 0 {
		t.Fatalf("a TCP refusal event with status %d", e.Status)
	}
}

// TestPolicyOperatorAndOwnerRulesCannotBeLoosened: the edge's --policy and
// an owner's rules from the tokens file run before the agent's; an owner's
// HTTP guard refuses a TCP tunnel that would escape it.
func TestPolicyOperatorAndOwnerRulesCannotBeLoosened(t *testing.T) {
	ownerSpec, err := policy.Parse([]byte(`
on_tcp_connect:
  - name: lan only
    actions: [{type: restrict-ips, config: {allow: [10.0.0.0/8]}}]
on_http_request:
  - name: staff sign-in
    expressions: ["req.path.startsWith('/staff')"]
    actions: [{type: basic-auth, config: {credentials: ["staff:pw"]}}]
`), "tokens.yaml")
	if err != nil {
		t.Fatal(err)
	}
	opSpec, err := policy.Parse([]byte(`
on_http_request:
  - name: no admin
    expressions: ["req.path.startsWith('/admin')"]
    actions: [{type: deny, config: {status: 404}}]
`), "edge-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv := startEdge(t, func(c *server.Config) {
		c.Tokens = nil
		c.TokenRules = []server.TokenRule{{Token: token, Owner: "iot", Policy: ownerSpec}}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.Policy = opSpec
	})
	addr, ln := countingHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "in") }))
	// The agent's own rule would answer everything itself: it still runs
	// after the owner's and the operator's.
	mine, err := policy.Parse([]byte("on_http_request:\n  - name: open house\n    actions: [{type: custom-response, config: {body: welcome}}]\n"), "mine.yaml")
	if err != nil {
		t.Fatal(err)
	}
	as := startPolicyAgent(t, srv, nil, agent.Tunnel{Kind: control.KindHTTP, Name: "sensors", Local: addr, Policy: mine})
	if !strings.Contains(as[0].Policy, "owner iot") || !strings.Contains(as[0].Policy, "server") {
		t.Fatalf("assigned policy %q", as[0].Policy)
	}
	c := viaEdge(t, srv.HTTPAddr().String())
	from := func(ip string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("X-Forwarded-For", ip) }
	}
	if resp := policyGet(t, c, "http://sensors.localhost/", from("192.0.2.1")); resp.StatusCode != 403 {
		t.Fatalf("outside the owner's network: %d", resp.StatusCode)
	}
	if resp := policyGet(t, c, "http://sensors.localhost/admin", from("10.0.0.1")); resp.StatusCode != 404 {
		t.Fatalf("the operator's rule: %d", resp.StatusCode)
	}
	if resp := policyGet(t, c, "http://sensors.localhost/staff", from("10.0.0.1")); resp.StatusCode != 401 {
		t.Fatalf("the owner's sign-in: %d", resp.StatusCode)
	}
	if resp := policyGet(t, c, "http://sensors.localhost/", from("10.0.0.1")); resp.StatusCode != 200 {
		t.Fatalf("the agent's own rule after the others: %d", resp.StatusCode)
	}
	if n := ln.n.Load(); n != 0 {
		t.Fatalf("%d streams opened, want 0 (every request was answered at the edge)", n)
	}

	// A TCP tunnel cannot escape the owner's HTTP sign-in.
	a, err := agent.New(agent.Config{Server: srv.Addr().String(), Token: token,
		Tunnels: []agent.Tunnel{{Kind: control.KindTCP, Local: addr}}, FirstConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = a.Run(ctx)
	var ce *control.Error
	if !errors.As(err, &ce) || ce.Code != control.CodeBadRequest || !strings.Contains(ce.Message, `rule "staff sign-in"`) || !strings.Contains(ce.Message, "owner iot") {
		t.Fatalf("a TCP tunnel under an owner's HTTP guard: %v", err)
	}
}

// TestPolicyRefusalsShowInTheInspector: the inspector lists a request the
// edge refused, naming the rule, with no header or body of it.
func TestPolicyRefusalsShowInTheInspector(t *testing.T) {
	srv := startEdge(t, nil)
	in, err := inspect.New(inspect.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- in.Serve() }()
	t.Cleanup(func() { in.Close(); <-done })
	addr, ln := countingHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "in") }))
	as := edgetest.NewAssignments()
	a, err := agent.New(agent.Config{Server: srv.Addr().String(), Token: token, OnAssigned: as.Hook,
		HTTPMiddleware: in.Wrap, OnPolicyRefused: in.Refused,
		Tunnels: []agent.Tunnel{{Kind: control.KindHTTP, Name: "team", Local: addr, LogRequests: true,
			Policy: mustSpec(t, policy.Simple{BasicAuth: []string{"ana:plum"}})}}})
	if err != nil {
		t.Fatal(err)
	}
	edgetest.RunAgent(t, a, as, 1)
	c := viaEdge(t, srv.HTTPAddr().String())
	for range 2 {
		policyGet(t, c, "http://team.localhost/secret/page?x=1", func(r *http.Request) { r.SetBasicAuth("ana", "wrong-password") })
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("GET", in.URL(), nil)
		req.URL.Path, req.URL.RawQuery = "/api/requests", ""
		req.Header.Set("Authorization", "Bearer "+in.Secret())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ Requests []inspect.Summary }
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if len(out.Requests) > 0 {
			s := out.Requests[0]
			if s.Method != "GET" || s.Path != "/secret/page" || s.Status != 401 || !strings.Contains(s.RefusedBy, `agent rule "basic-auth" (basic-auth)`) {
				t.Fatalf("inspector shows %+v", s)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the inspector did not show the refusals within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ln.n.Load() != 0 {
		t.Fatal("a refused request reached the local service")
	}
}

// TestPolicyReloadTightensLiveTunnels: a reload that adds an owner's rule
// holds for the owner's tunnels already online.
func TestPolicyReloadTightensLiveTunnels(t *testing.T) {
	base := server.Config{Listen: edgetest.Loopback, HTTP: edgetest.Loopback, Domain: "localhost",
		TokenRules: []server.TokenRule{{Token: token, Owner: "iot"}}}
	srv := edgetest.Start(t, server.New, base).S
	addr, _ := countingHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "in") }))
	startPolicyAgent(t, srv, nil, agent.Tunnel{Kind: control.KindHTTP, Name: "sensor", Local: addr})
	c := viaEdge(t, srv.HTTPAddr().String())
	if resp := policyGet(t, c, "http://sensor.localhost/", nil); resp.StatusCode != 200 {
		t.Fatalf("before the reload: %d", resp.StatusCode)
	}
	lan, err := policy.Parse([]byte("on_tcp_connect:\n  - name: lan only\n    actions: [{type: restrict-ips, config: {allow: [10.0.0.0/8]}}]\n"), "tokens.yaml")
	if err != nil {
		t.Fatal(err)
	}
	next := base
	next.TokenRules = []server.TokenRule{{Token: token, Owner: "iot", Policy: lan}}
	if _, err := srv.Reload(next); err != nil {
		t.Fatal(err)
	}
	if resp := policyGet(t, c, "http://sensor.localhost/", nil); resp.StatusCode != 403 {
		t.Fatalf("after the reload: %d, want 403", resp.StatusCode)
	}
	if st := srv.Status(); len(st.Tunnels) != 1 || !strings.Contains(st.Tunnels[0].Policy, "lan only") {
		t.Fatalf("admin listing after the reload: %+v", st.Tunnels)
	}
}

// TestPolicyOIDCThroughTheEdge: a real OpenID provider, an edge and an
// agent: the edge runs the sign-in for the tunnel's own hostname and the
// app sees only signed-in, allowed visitors, with the identity the edge
// verified.
func TestPolicyOIDCThroughTheEdge(t *testing.T) {
	srv := startEdge(t, nil)
	public, idp, tunnel, seen := ssoApp(t, srv.HTTPAddr().String())
	startPolicyAgent(t, srv, nil, tunnel)
	client := func() *http.Client { return localBrowser(t) }
	code, body := idp.SignIn(t, client(), public+"/dashboard", oidctest.Mallory, oidctest.MalloryPassword)
	if code != 403 || !strings.Contains(body, oidctest.MalloryEmail) {
		t.Fatalf("mallory: %d %s", code, body)
	}
	if seen.Load() != 0 {
		t.Fatal("the app was reached before anyone allowed signed in")
	}
	alice := client()
	code, body = idp.SignIn(t, alice, public+"/dashboard", oidctest.Alice, oidctest.AlicePassword)
	if code != 200 || body != "hello "+oidctest.AliceEmail {
		t.Fatalf("alice: %d %s", code, body)
	}
	req, _ := http.NewRequest("GET", public+"/again", nil)
	req.Header.Set(policy.HeaderEmail, "ceo@example.com")
	resp, err := alice.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello "+oidctest.AliceEmail || seen.Load() != 2 {
		t.Fatalf("second visit: %q, app reached %d times", b, seen.Load())
	}
	if st, _ := json.Marshal(srv.Status()); strings.Contains(string(st), oidctest.ClientSecret) {
		t.Fatal("the client secret is in the admin listing")
	}
}

// ssoApp starts a real OpenID provider and an app that greets the visitor
// the edge names, and returns the tunnel "sso" that guards the app with
// OpenID Connect (example.com accounts only) and its public URL on the
// edge's HTTP address; seen counts the requests that reached the app.
func ssoApp(t *testing.T, httpAddr string) (public string, idp *oidctest.Provider, tunnel agent.Tunnel, seen *atomic.Int64) {
	t.Helper()
	_, port, _ := net.SplitHostPort(httpAddr)
	public = "http://sso.localhost:" + port
	idp = oidctest.Start(t, public+policy.OIDCCallbackPath)
	seen = new(atomic.Int64)
	addr, _ := countingHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		io.WriteString(w, "hello "+r.Header.Get(policy.HeaderEmail))
	}))
	tunnel = agent.Tunnel{Kind: control.KindHTTP, Name: "sso", Local: addr,
		Policy: mustSpec(t, policy.Simple{OIDCIssuer: idp.Issuer, OIDCClientID: oidctest.ClientID,
			OIDCClientSecret: oidctest.ClientSecret, OIDCAllowDomains: []string{"example.com"}})}
	return public, idp, tunnel, seen
}

// localBrowser is an HTTP client as a browser is for these tests:
// *.localhost is this machine, and cookies are kept per host.
func localBrowser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		if h, p, _ := net.SplitHostPort(a); strings.HasSuffix(h, ".localhost") {
			a = net.JoinHostPort("127.0.0.1", p)
		}
		return (&net.Dialer{}).DialContext(ctx, network, a)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Jar: jar, Transport: tr, Timeout: 20 * time.Second}
}

// TestPolicyOIDCSessionSurvivesAnEdgeRestart: the key that seals sign-in
// cookies is kept in the edge's state directory, so a visitor signed in
// before a restart is still signed in after it; an edge with another key
// (a rotated one) does not open the cookie and sends the visitor to sign
// in again, without reaching the app.
func TestPolicyOIDCSessionSurvivesAnEdgeRestart(t *testing.T) {
	state := t.TempDir()
	edge := func(stateDir, httpAddr string) *edgetest.Edge[*server.Server] {
		return edgetest.Start(t, server.New, server.Config{Listen: edgetest.Loopback, HTTP: httpAddr, Domain: "localhost",
			Tokens: []string{token}, HandshakeTimeout: 5 * time.Second, StateDir: stateDir})
	}
	first := edge(state, edgetest.Loopback)
	httpAddr := first.S.HTTPAddr().String()
	public, idp, tunnel, seen := ssoApp(t, httpAddr)
	serve := func(e *edgetest.Edge[*server.Server]) (stop func()) {
		as := edgetest.NewAssignments()
		a, err := agent.New(agent.Config{Server: e.S.Addr().String(), Token: token, Tunnels: []agent.Tunnel{tunnel}, OnAssigned: as.Hook})
		if err != nil {
			t.Fatal(err)
		}
		_, stop = edgetest.RunAgent(t, a, as, 1)
		return stop
	}
	stop := serve(first)
	alice := localBrowser(t)
	if code, body := idp.SignIn(t, alice, public+"/dashboard", oidctest.Alice, oidctest.AlicePassword); code != 200 || body != "hello "+oidctest.AliceEmail {
		t.Fatalf("signing in: %d %s", code, body)
	}
	// From here on a redirect is an answer: a cookie that does not open
	// sends the visitor to the provider.
	alice.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	visit := func() (int, string, string) {
		t.Helper()
		resp, err := alice.Get(public + "/again")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), resp.Header.Get("Location")
	}
	restart := func(stateDir string) {
		t.Helper()
		stop()
		if err := first.Stop(); err != nil {
			t.Fatal(err)
		}
		first = edge(stateDir, httpAddr)
		stop = serve(first)
	}

	restart(state)
	if code, body, _ := visit(); code != 200 || body != "hello "+oidctest.AliceEmail {
		t.Fatalf("after a restart with the same state directory: %d %q, want the signed-in visitor let through", code, body)
	}
	before := seen.Load()
	restart(t.TempDir())
	code, _, loc := visit()
	if code != http.StatusFound || !strings.HasPrefix(loc, idp.Issuer) {
		t.Fatalf("after a restart with another key: %d, Location %q; want a redirect to sign in at %s", code, loc, idp.Issuer)
	}
	if seen.Load() != before {
		t.Fatal("a cookie sealed with another key reached the app")
	}
}

// TestPolicyRefusesGRPCWithAStatus: a gRPC client refused by the policy
// gets a gRPC status, not an HTML page.
func TestPolicyRefusesGRPCWithAStatus(t *testing.T) {
	srv := startEdge(t, nil)
	addr, ln := countingHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	startPolicyAgent(t, srv, nil,
		agent.Tunnel{Kind: control.KindHTTP, Name: "rpc", Local: addr, Policy: mustSpec(t, policy.Simple{BasicAuth: []string{"svc:key"}})},
		agent.Tunnel{Kind: control.KindHTTP, Name: "lan", Local: addr, Policy: mustSpec(t, policy.Simple{AllowCIDRs: []string{"10.0.0.0/8"}})})
	port := srv.HTTPAddr().(*net.TCPAddr).Port
	for host, want := range map[string]codes.Code{"rpc": codes.Unauthenticated, "lan": codes.PermissionDenied} {
		cc := grpcTo(t, srv.HTTPAddr().String(), host+".localhost:"+strconv.Itoa(port))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		in, out := []byte("ping"), []byte(nil)
		err := cc.Invoke(ctx, "/sluice.test.Echo/Echo", &in, &out)
		cancel()
		if st, _ := status.FromError(err); st.Code() != want {
			t.Errorf("%s: %v, want %s", host, err, want)
		}
	}
	if ln.n.Load() != 0 {
		t.Fatal("a refused call reached the agent")
	}
}

// TestPolicyHeadersAndWebhooksThroughTheEdge: header rules change what the
// app and the client see, on the proxy's fast path (GET) and its general
// one (POST); a webhook signed as GitHub does reaches the app with its body
// intact, and a tampered one does not.
func TestPolicyHeadersAndWebhooksThroughTheEdge(t *testing.T) {
	srv := startEdge(t, nil)
	var hooks atomic.Int64
	addr, _ := countingHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/hook" {
			hooks.Add(1)
		}
		w.Header().Set("Server", "app/1.0")
		io.WriteString(w, "env="+r.Header.Get("X-Env")+" debug="+r.Header.Get("X-Debug")+" body="+string(b))
	}))
	startPolicyAgent(t, srv, nil,
		agent.Tunnel{Kind: control.KindHTTP, Name: "shaped", Local: addr, Policy: mustSpec(t, policy.Simple{
			RequestHeaderAdd: []string{"X-Env: prod"}, RequestHeaderRemove: []string{"X-Debug"},
			ResponseHeaderAdd: []string{"X-Frame-Options: DENY"}, ResponseHeaderRemove: []string{"Server"}})},
		agent.Tunnel{Kind: control.KindHTTP, Name: "hooks", Local: addr, Policy: mustSpec(t, policy.Simple{
			VerifyWebhooks: []string{"github:whsec"}})})
	c := viaEdge(t, srv.HTTPAddr().String())
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, "http://shaped.localhost/", strings.NewReader(map[string]string{"GET": "", "POST": "data"}[method]))
		req.Header.Set("X-Debug", "1")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(b), "env=prod debug= ") || resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Server") != "" {
			t.Fatalf("%s: %q %v", method, b, resp.Header)
		}
	}
	const payload = `{"zen":"Keep it logically awesome."}`
	sign := func(body string) string {
		m := hmac.New(sha256.New, []byte("whsec"))
		m.Write([]byte(body))
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	for body, want := range map[string]int{payload: 200, payload + " ": 403} {
		req, _ := http.NewRequest("POST", "http://hooks.localhost/hook", strings.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", sign(payload))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || want == 200 && !strings.HasSuffix(string(b), "body="+payload) {
			t.Fatalf("webhook %q: %d %q", body, resp.StatusCode, b)
		}
	}
	if hooks.Load() != 1 {
		t.Fatalf("the app got %d webhooks, want 1", hooks.Load())
	}
}

// TestPolicyDeniedRequestsOpenNoStream: with the policy the benchmark
// harness measures (--basic-auth, --allow-cidr and a policy file with one
// CEL condition), every request a rule refuses is answered at the edge
// without a stream to the agent, by the edge's own stream count, and an
// admitted request opens one.
func TestPolicyDeniedRequestsOpenNoStream(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := startEdge(t, func(c *server.Config) {
		c.Metrics = reg
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	file := filepath.Join(t.TempDir(), "policy.yaml")
	rules := "on_http_request:\n  - name: no admin pages\n    expressions: [\"req.path.startsWith('/admin')\"]\n    actions: [{type: deny, config: {status: 404}}]\n"
	if err := os.WriteFile(file, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, ln := countingHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "in") }))
	startPolicyAgent(t, srv, nil, agent.Tunnel{Kind: control.KindHTTP, Name: "guarded", Local: addr,
		Policy: mustSpec(t, policy.Simple{BasicAuth: []string{"bench:bench-password"}, AllowCIDRs: []string{"127.0.0.0/8"}, File: file})})
	opened := func() float64 {
		return counter(t, reg, "sluice_edge_tunnel_streams_opened_total", "tunnel", "guarded")
	}
	c := viaEdge(t, srv.HTTPAddr().String())
	auth := func(user, pass string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, pass) }
	}
	for _, tc := range []struct {
		name, path string
		mod        func(*http.Request)
		status     int
	}{
		{"no credentials", "/", nil, 401},
		{"a wrong password", "/", auth("bench", "wrong"), 401},
		{"the CEL condition", "/admin/users", auth("bench", "bench-password"), 404},
		{"outside the allowed network", "/", func(r *http.Request) {
			r.SetBasicAuth("bench", "bench-password")
			r.Header.Set("X-Forwarded-For", "192.0.2.7")
		}, 403},
	} {
		for range 3 {
			if resp := policyGet(t, c, "http://guarded.localhost"+tc.path, tc.mod); resp.StatusCode != tc.status {
				t.Fatalf("refused by %s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
			}
		}
		if n := opened(); n != 0 {
			t.Fatalf("after requests refused by %s the edge had opened %g streams to the agent, want 0", tc.name, n)
		}
	}
	if n := ln.n.Load(); n != 0 {
		t.Fatalf("the local service accepted %d connections from refused requests, want 0", n)
	}
	if resp := policyGet(t, c, "http://guarded.localhost/", auth("bench", "bench-password")); resp.StatusCode != 200 {
		t.Fatalf("an admitted request: status %d", resp.StatusCode)
	}
	if n := opened(); n != 1 {
		t.Fatalf("an admitted request opened %g streams, want 1", n)
	}
}

// TestPolicyOIDCSessionOpensOnEveryFleetEdge: edges of one fleet derive
// the key that seals sign-in cookies from the fleet secret, so a visitor
// who signed in through one edge is let through by another that holds its
// own session to the agent, with no second sign-in.
func TestPolicyOIDCSessionOpensOnEveryFleetEdge(t *testing.T) {
	edges := startFleet(t, 2)
	public, idp, tunnel, seen := ssoApp(t, edges[0].HTTPAddr().String())
	startAgentWith(t, agent.Config{Server: edges[0].Addr().String(), Sessions: 2}, tunnel)
	// Both edges serve the tunnel from sessions of their own, so the
	// second one judges the cookie itself rather than passing the request on.
	deadline := time.Now().Add(10 * time.Second)
	for edges[1].Stats().Sessions != 1 || edges[1].Stats().Hostnames != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the second edge has %+v after 10 s, want the agent's second session", edges[1].Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	alice := localBrowser(t)
	if code, body := idp.SignIn(t, alice, public+"/dashboard", oidctest.Alice, oidctest.AlicePassword); code != 200 || body != "hello "+oidctest.AliceEmail {
		t.Fatalf("signing in through the first edge: %d %s", code, body)
	}
	// The next request goes to the second edge at the same address, as a
	// load balancer in front of the fleet would send it; the cookie is the
	// one the first edge sealed for this host.
	second := edges[1].HTTPAddr().String()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, second)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	alice = &http.Client{Jar: alice.Jar, Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	before := seen.Load()
	resp, err := alice.Get(public + "/again")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "hello "+oidctest.AliceEmail {
		t.Fatalf("the second edge answered %d %q (Location %q), want the signed-in visitor let through", resp.StatusCode, b, resp.Header.Get("Location"))
	}
	if seen.Load() != before+1 {
		t.Fatalf("the app saw %d requests from the second edge, want 1", seen.Load()-before)
	}
}
