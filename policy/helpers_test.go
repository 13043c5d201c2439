package policy

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a held clock: time moves only when a test says so.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// compileYAML compiles one policy file's text for an HTTP tunnel.
func compileYAML(t *testing.T, c *clock, src string) *Policy {
	t.Helper()
	return compileKind(t, c, KindHTTP, src)
}

func compileKind(t *testing.T, c *clock, kind, src string) *Policy {
	t.Helper()
	spec, err := Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	opts := Options{Kind: kind}
	if c != nil {
		opts.Now = c.Now
	}
	p, err := Compile(opts, Layer{Source: "test.yaml", Spec: spec})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

// result is one request through a policy, and what the app would get.
type result struct {
	rec *httptest.ResponseRecorder
	d   *Decision
	r   *http.Request // as the app would see it (nil when refused)
}

// serve runs r through p from client and, when p lets it through, through
// app (a 200 "app" handler when nil).
func serve(p *Policy, r *http.Request, client string, app http.Handler) result {
	rec := httptest.NewRecorder()
	w, d := p.Request(rec, r, netip.MustParseAddrPort(client))
	if d != nil {
		return result{rec: rec, d: d}
	}
	if app == nil {
		app = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("app")) })
	}
	app.ServeHTTP(w, r)
	return result{rec: rec, r: r}
}

func get(target string) *http.Request {
	return httptest.NewRequest(http.MethodGet, target, nil)
}

func wantStatus(t *testing.T, res result, code int) {
	t.Helper()
	if res.rec.Code != code {
		t.Fatalf("status %d, want %d (body %q)", res.rec.Code, code, strings.TrimSpace(res.rec.Body.String()))
	}
}
