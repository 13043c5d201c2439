package policy

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestRestrictIPs(t *testing.T) {
	p := compileYAML(t, nil, `
on_tcp_connect:
  - name: office
    actions:
      - type: restrict-ips
        config:
          allow: [10.0.0.0/8, "2001:db8::/32", 192.0.2.7]
          deny: [10.9.0.0/16, "2001:db8:bad::/48"]
`)
	cases := []struct {
		client string
		ok     bool
	}{
		{"10.1.2.3:5000", true},
		{"10.9.0.1:5000", false},          // deny wins over allow
		{"192.0.2.7:1", true},             // a single address
		{"192.0.2.8:1", false},            // outside allow
		{"[::ffff:10.1.2.3]:80", true},    // IPv4-mapped IPv6 is IPv4
		{"[2001:db8::1]:443", true},       // IPv6 allow
		{"[2001:db8:bad::1]:443", false},  // IPv6 deny
		{"[2001:db9::1]:443", false},      // IPv6 outside allow
		{"[::ffff:192.0.2.8]:443", false}, // mapped, outside
		{"[fe80::1%eth0]:443", false},     // link-local with a zone
	}
	for _, tc := range cases {
		res := serve(p, get("http://a.test/"), tc.client, nil)
		if tc.ok {
			wantStatus(t, res, 200)
		} else {
			wantStatus(t, res, 403)
			if res.d == nil || !res.d.Refused || res.d.Rule != "office" || res.d.Action != "restrict-ips" {
				t.Fatalf("%s: decision %+v", tc.client, res.d)
			}
		}
		d := p.Conn(netip.MustParseAddrPort(tc.client))
		if (d == nil) != tc.ok {
			t.Fatalf("Conn(%s) = %+v, want allowed %v", tc.client, d, tc.ok)
		}
		if d != nil && (d.Status != 0 || d.Rule != "office") {
			t.Fatalf("Conn decision %+v", d)
		}
	}
}

func TestRateLimitPerClientWithRetryAfter(t *testing.T) {
	c := newClock()
	p := compileYAML(t, c, `
on_tcp_connect:
  - name: slow down
    actions:
      - type: rate-limit
        config: {limit: 3/1m}
`)
	for i := 0; i < 3; i++ {
		wantStatus(t, serve(p, get("http://a.test/"), "192.0.2.1:1", nil), 200)
	}
	res := serve(p, get("http://a.test/"), "192.0.2.1:2", nil)
	wantStatus(t, res, 429)
	if got := res.rec.Header().Get("Retry-After"); got != "20" {
		t.Fatalf("Retry-After %q, want 20 (one token every 20s)", got)
	}
	// Another client has its own bucket.
	wantStatus(t, serve(p, get("http://a.test/"), "192.0.2.2:1", nil), 200)
	// A refused request spends nothing: after 20s exactly one more passes.
	c.Advance(20 * time.Second)
	wantStatus(t, serve(p, get("http://a.test/"), "192.0.2.1:1", nil), 200)
	wantStatus(t, serve(p, get("http://a.test/"), "192.0.2.1:1", nil), 429)
	// IPv6 clients are limited per /64.
	for i := 0; i < 3; i++ {
		wantStatus(t, serve(p, get("http://a.test/"), fmt.Sprintf("[2001:db8::%d]:1", i+1), nil), 200)
	}
	wantStatus(t, serve(p, get("http://a.test/"), "[2001:db8::ffff]:1", nil), 429)

	// New TCP connections are limited the same way.
	tcp := compileKind(t, c, KindTCP, "on_tcp_connect:\n  - actions: [{type: rate-limit, config: {limit: 2/s}}]\n")
	a := netip.MustParseAddrPort("198.51.100.1:1")
	if tcp.Conn(a) != nil || tcp.Conn(a) != nil || tcp.Conn(a) == nil {
		t.Fatal("third connection within the second was not refused")
	}
	c.Advance(500 * time.Millisecond)
	if tcp.Conn(a) != nil {
		t.Fatal("a token should have come back after 500ms")
	}
}

func TestRateLimitTableStaysBounded(t *testing.T) {
	c := newClock()
	spec, _ := Parse([]byte("on_tcp_connect:\n  - actions: [{type: rate-limit, config: {limit: 1/1h}}]\n"), "t")
	p, err := Compile(Options{Now: c.Now, MaxClients: 64}, Layer{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	rl := p.conn[0].actions[0].(*rateLimit)
	for i := 0; i < 1000; i++ {
		ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 1)
		if p.Conn(ap) != nil {
			t.Fatalf("client %d refused on its first connection", i)
		}
		if n := rl.clients.len(); n > 64 {
			t.Fatalf("table holds %d clients, over its bound of 64", n)
		}
	}
	// Spent entries go first, and forgetting them loses nothing: after two
	// hours every bucket is full again, so the next newcomer sweeps them all.
	c.Advance(2 * time.Hour)
	limited := netip.MustParseAddrPort("192.0.2.99:1")
	if p.Conn(limited) != nil {
		t.Fatal("newcomer refused")
	}
	if n := rl.clients.len(); n != 1 {
		t.Fatalf("after the sweep the table holds %d clients, want 1 (all others were spent)", n)
	}
	if p.Conn(limited) == nil {
		t.Fatal("the newcomer's own bucket was lost")
	}
}

func TestBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("hashed-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	p := compileYAML(t, c, fmt.Sprintf(`
on_http_request:
  - name: team
    actions:
      - type: basic-auth
        config:
          realm: Team area
          credentials: ["alice:plain-pw", "bob:%s"]
`, hash))
	res := serve(p, get("http://a.test/"), "192.0.2.1:1", nil)
	wantStatus(t, res, 401)
	if got := res.rec.Header().Get("WWW-Authenticate"); got != `Basic realm="Team area", charset="UTF-8"` {
		t.Fatalf("challenge %q", got)
	}
	for _, cred := range [][2]string{{"alice", "plain-pw"}, {"bob", "hashed-pw"}, {"bob", "hashed-pw"}} {
		r := get("http://a.test/")
		r.SetBasicAuth(cred[0], cred[1])
		res := serve(p, r, "192.0.2.1:1", nil)
		wantStatus(t, res, 200)
		if res.r.Header.Get("Authorization") != "" {
			t.Fatal("the app received the edge's credentials")
		}
	}
	for _, cred := range [][2]string{{"alice", "wrong"}, {"bob", "plain-pw"}, {"carol", "plain-pw"}, {"alice", ""}} {
		r := get("http://a.test/")
		r.SetBasicAuth(cred[0], cred[1])
		wantStatus(t, serve(p, r, "192.0.2.50:1", nil), 401)
	}
}

// The usual header passes on a hash of itself; every other spelling of the
// same credentials is decoded and checked, and passes too.
func TestBasicAuthAcceptsEveryFormOfTheHeader(t *testing.T) {
	p := compileYAML(t, newClock(), "on_http_request:\n  - actions: [{type: basic-auth, config: {credentials: [\"alice:plain-pw\", \"carol:with:colon\"]}}]\n")
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, h := range []string{
		"Basic " + b64("alice:plain-pw"),
		"basic " + b64("alice:plain-pw"),
		"BASIC " + b64("alice:plain-pw"),
		"Basic " + b64("carol:with:colon"),
	} {
		r := get("http://a.test/")
		r.Header.Set("Authorization", h)
		res := serve(p, r, "192.0.2.1:1", nil)
		wantStatus(t, res, 200)
		if res.r.Header.Get("Authorization") != "" {
			t.Fatalf("%q: the app received the edge's credentials", h)
		}
	}
	for _, h := range []string{
		"Basic " + b64("alice:plain-pw "),
		"Basic " + b64("carol:plain-pw"),
		"Basic " + b64("alice:plain-pw")[:8],
		"Bearer " + b64("alice:plain-pw"),
		"Basic " + strings.Repeat("A", 2*maxFastHeader),
	} {
		r := get("http://a.test/")
		r.Header.Set("Authorization", h)
		wantStatus(t, serve(p, r, "192.0.2.9:1", nil), 401)
	}
}

func TestBasicAuthFailuresAreSlowedPerAddress(t *testing.T) {
	c := newClock()
	p := compileYAML(t, c, "on_http_request:\n  - actions: [{type: basic-auth, config: {credentials: [\"u:right\"]}}]\n")
	try := func(client, pass string) result {
		r := get("http://a.test/")
		r.SetBasicAuth("u", pass)
		return serve(p, r, client, nil)
	}
	for i := 0; i < freeFailures-1; i++ {
		wantStatus(t, try("192.0.2.1:1", "wrong"), 401)
	}
	// The failure that reaches the threshold locks the address for 1s.
	wantStatus(t, try("192.0.2.1:1", "wrong"), 401)
	res := try("192.0.2.1:1", "right")
	wantStatus(t, res, 429)
	if res.rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", res.rec.Header().Get("Retry-After"))
	}
	// Other addresses are not slowed.
	wantStatus(t, try("192.0.2.2:1", "right"), 200)
	// Each further failure doubles the wait.
	c.Advance(time.Second)
	wantStatus(t, try("192.0.2.1:1", "wrong"), 401)
	if res := try("192.0.2.1:1", "right"); res.rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("second lockout Retry-After %q, want 2", res.rec.Header().Get("Retry-After"))
	}
	c.Advance(2 * time.Second)
	// The right password, once let in, forgets the failures.
	wantStatus(t, try("192.0.2.1:1", "right"), 200)
	wantStatus(t, try("192.0.2.1:1", "wrong"), 401)
	wantStatus(t, try("192.0.2.1:1", "right"), 200)
}

func TestConditions(t *testing.T) {
	c := newClock()
	p := compileYAML(t, c, `
on_http_request:
  - name: admin
    expressions: ["req.path.startsWith('/admin')", "!inCidrRange(conn.client_ip, '10.0.0.0/8')"]
    actions: [{type: deny}]
  - name: debug
    expressions: ["'debug' in req.query && req.query['debug'][0] == '1'"]
    actions: [{type: custom-response, config: {status: 418, body: debug}}]
  - name: tea
    expressions: ["'x-tea' in req.headers && req.headers['x-tea'].exists(v, v == 'earl grey')", "req.method == 'POST'"]
    actions: [{type: custom-response, config: {body: tea}}]
  - name: night
    expressions: ["time.now.getHours('UTC') >= 22"]
    actions: [{type: custom-response, config: {status: 503, body: closed}}]
  - name: port
    expressions: ["conn.client_port == 4242 && req.host == 'b.test'"]
    actions: [{type: deny, config: {status: 451}}]
  - name: guarded
    expressions: ["req.headers['x-must'][0] == 'yes'"]
    actions: [{type: deny}]
`)
	h := func(r *http.Request, k, v string) *http.Request { r.Header.Set(k, v); return r }
	must := func(r *http.Request) *http.Request { return h(r, "X-Must", "no") }
	wantStatus(t, serve(p, must(get("http://a.test/admin/x")), "192.0.2.1:1", nil), 403)
	if res := serve(p, must(get("http://a.test/admin/x")), "192.0.2.1:1", nil); res.d.Rule != "admin" || res.d.Source != "test.yaml" {
		t.Fatalf("decision %+v", res.d)
	}
	wantStatus(t, serve(p, must(get("http://a.test/admin/x")), "10.1.1.1:1", nil), 200)
	wantStatus(t, serve(p, must(get("http://a.test/?debug=1")), "192.0.2.1:1", nil), 418)
	wantStatus(t, serve(p, must(get("http://a.test/?debug=0")), "192.0.2.1:1", nil), 200)
	post := httptest.NewRequest(http.MethodPost, "http://a.test/", nil)
	post.Header.Add("X-Tea", "green")
	post.Header.Add("X-Tea", "earl grey")
	if res := serve(p, must(post), "192.0.2.1:1", nil); res.rec.Body.String() != "tea" {
		t.Fatalf("tea: %d %q", res.rec.Code, res.rec.Body.String())
	}
	wantStatus(t, serve(p, must(get("http://b.test/")), "192.0.2.1:4242", nil), 451)
	c.Advance(10 * time.Hour) // 22:00 UTC
	wantStatus(t, serve(p, must(get("http://a.test/")), "192.0.2.1:1", nil), 503)
	c.Advance(3 * time.Hour)
	wantStatus(t, serve(p, must(get("http://a.test/")), "192.0.2.1:1", nil), 200)
	// A condition that cannot be evaluated refuses rather than guess.
	res := serve(p, get("http://a.test/"), "192.0.2.1:1", nil)
	wantStatus(t, res, 500)
	if res.d.Rule != "guarded" || res.d.Action != "condition" || !strings.Contains(res.rec.Body.String(), "guarded") {
		t.Fatalf("decision %+v body %q", res.d, res.rec.Body.String())
	}
}

func TestHeaderRules(t *testing.T) {
	p := compileYAML(t, nil, `
on_http_request:
  - actions:
      - type: add-headers
        config: {headers: {X-Env: prod, x-team: core}}
      - type: remove-headers
        config: {headers: [x-debug]}
on_http_response:
  - expressions: ["res.status == 200 && !('x-keep' in res.headers)"]
    actions:
      - type: add-headers
        config: {headers: {X-Frame-Options: DENY}}
      - type: remove-headers
        config: {headers: [Server]}
`)
	r := get("http://a.test/")
	r.Header.Set("X-Debug", "1")
	r.Header.Set("X-Env", "dev")
	var seen http.Header
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		w.Header().Set("Server", "app/1.0")
		if r.URL.Query().Get("keep") != "" {
			w.Header().Set("X-Keep", "1")
		}
		w.WriteHeader(http.StatusOK)
	})
	res := serve(p, r, "192.0.2.1:1", app)
	if seen.Get("X-Env") != "prod" || seen.Get("X-Team") != "core" || seen.Get("X-Debug") != "" {
		t.Fatalf("app saw %v", seen)
	}
	if res.rec.Header().Get("X-Frame-Options") != "DENY" || res.rec.Header().Get("Server") != "" {
		t.Fatalf("response headers %v", res.rec.Header())
	}
	res = serve(p, get("http://a.test/?keep=1"), "192.0.2.1:1", app)
	if res.rec.Header().Get("Server") != "app/1.0" || res.rec.Header().Get("X-Frame-Options") != "" {
		t.Fatalf("a response rule whose condition is false changed %v", res.rec.Header())
	}
}

func TestRedirectCustomResponseRewrite(t *testing.T) {
	p := compileYAML(t, nil, `
on_http_request:
  - name: blog
    actions: [{type: redirect, config: {from: "^/blog/(.*)$", to: "https://blog.example.com/$1", status: 301}}]
  - name: legacy
    actions: [{type: url-rewrite, config: {from: "^/v1/(.*)$", to: "/api/v2/$1"}}]
  - name: teapot
    expressions: ["req.path == '/teapot'"]
    actions: [{type: custom-response, config: {status: 418, body: "short and stout", headers: {Content-Type: text/x-tea}}}]
`)
	res := serve(p, get("http://a.test/blog/2026/hello?x=1"), "192.0.2.1:1", nil)
	wantStatus(t, res, 301)
	if got := res.rec.Header().Get("Location"); got != "https://blog.example.com/2026/hello?x=1" {
		t.Fatalf("Location %q", got)
	}
	if res.d.Refused {
		t.Fatal("a redirect is not a refusal")
	}
	var uri string
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { uri = r.URL.RequestURI() + " " + r.RequestURI })
	serve(p, get("http://a.test/v1/users?id=7"), "192.0.2.1:1", app)
	if uri != "/api/v2/users?id=7 /api/v2/users?id=7" {
		t.Fatalf("rewritten to %q", uri)
	}
	serve(p, get("http://a.test/other"), "192.0.2.1:1", app)
	if !strings.HasPrefix(uri, "/other ") {
		t.Fatalf("unmatched path became %q", uri)
	}
	res = serve(p, get("http://a.test/teapot"), "192.0.2.1:1", nil)
	if res.rec.Code != 418 || res.rec.Body.String() != "short and stout" || res.rec.Header().Get("Content-Type") != "text/x-tea" {
		t.Fatalf("custom response %d %q %v", res.rec.Code, res.rec.Body.String(), res.rec.Header())
	}
	// A rewrite may not leave the host.
	p = compileYAML(t, nil, "on_http_request:\n  - name: evil\n    actions: [{type: url-rewrite, config: {from: \"^/(.*)$\", to: \"https://evil.example/$1\"}}]\n")
	wantStatus(t, serve(p, get("http://a.test/x"), "192.0.2.1:1", nil), 500)
}

func TestLayersImposedRulesRunFirstAndCannotBeEscaped(t *testing.T) {
	owner, _ := Parse([]byte("on_tcp_connect:\n  - name: iot lan\n    actions: [{type: restrict-ips, config: {allow: [10.0.0.0/8]}}]\n"), "tokens")
	agent, _ := Parse([]byte("on_http_request:\n  - name: open\n    actions: [{type: custom-response, config: {body: hi}}]\n"), "agent")
	p, err := Compile(Options{}, Layer{Source: "owner iot", Spec: owner, Imposed: true}, Layer{Source: "agent", Spec: agent})
	if err != nil {
		t.Fatal(err)
	}
	res := serve(p, get("http://a.test/"), "192.0.2.1:1", nil)
	wantStatus(t, res, 403)
	if res.d.Source != "owner iot" || res.d.Rule != "iot lan" {
		t.Fatalf("decision %+v", res.d)
	}
	// An owner's OIDC requirement cannot be escaped with a TCP tunnel.
	sso, _ := Parse([]byte("on_http_request:\n  - name: sso\n    actions: [{type: openid-connect, config: {issuer: \"https://id.example.com\", client_id: x}}]\n"), "tokens")
	_, err = Compile(Options{Kind: KindTCP}, Layer{Source: "owner contractors", Spec: sso, Imposed: true})
	if err == nil || !strings.Contains(err.Error(), "owner contractors") || !strings.Contains(err.Error(), `rule "sso"`) {
		t.Fatalf("imposed guard on a tcp tunnel: %v", err)
	}
	// But the operator's header shaping is simply skipped there.
	hdr, _ := Parse([]byte("on_http_response:\n  - actions: [{type: add-headers, config: {headers: {X-A: b}}}]\n"), "server")
	if _, err := Compile(Options{Kind: KindUDP}, Layer{Source: "server", Spec: hdr, Imposed: true}); err != nil {
		t.Fatal(err)
	}
	// An agent's HTTP rules on its TCP tunnel are a mistake it hears about.
	if _, err := Compile(Options{Kind: KindTCP}, Layer{Source: "agent", Spec: agent}); err == nil || !strings.Contains(err.Error(), "tcp tunnel") {
		t.Fatalf("agent HTTP rule on tcp: %v", err)
	}
}

func TestSimpleOptionsBuildRules(t *testing.T) {
	s := Simple{
		BasicAuth:        []string{"a:b"},
		AllowCIDRs:       []string{"10.0.0.0/8"},
		RateLimit:        "10/s",
		VerifyWebhooks:   []string{"github:xyz"},
		RequestHeaderAdd: []string{"X-A: 1"}, RequestHeaderRemove: []string{"X-B"},
		ResponseHeaderAdd: []string{"X-C:2"}, ResponseHeaderRemove: []string{"Server"},
		OIDCIssuer: "https://id.example.com", OIDCClientID: "c", OIDCClientSecret: "s",
		OIDCAllowEmails: []string{"a@x.com,b@x.com"}, OIDCAllowDomains: []string{"y.com"},
	}
	spec, err := s.Spec()
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Summary(); got != "on_tcp_connect: restrict-ips[restrict-ips] rate-limit[rate-limit]; on_http_request: verify-webhook github[verify-webhook] basic-auth[basic-auth] openid-connect[openid-connect] request headers added[add-headers] request headers removed[remove-headers]; on_http_response: response headers added[add-headers] response headers removed[remove-headers]" {
		t.Fatalf("summary %s", got)
	}
	if _, err := Compile(Options{}, Layer{Source: "agent", Spec: spec}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Simple{
		{BasicAuth: []string{"nocolon"}}, {AllowCIDRs: []string{"10.0.0/8"}}, {RateLimit: "10"},
		{VerifyWebhooks: []string{"github"}}, {OIDCClientID: "x"}, {RequestHeaderAdd: []string{"novalue"}},
	} {
		if _, err := bad.Spec(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]time.Duration{"100/1m": time.Minute / 100, "5/s": time.Second / 5, "1/h": time.Hour, "10/30s": 3 * time.Second} {
		n, per, err := ParseRate(in)
		if err != nil || per/time.Duration(n) != want {
			t.Errorf("%s: %d/%s %v", in, n, per, err)
		}
	}
	for _, bad := range []string{"", "10", "0/s", "-1/s", "x/s", "10/", "10/-1s", "10/ever"} {
		if _, _, err := ParseRate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
