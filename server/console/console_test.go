package console

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// edge is a Backend of fixed contents that records the actions asked of
// it: these tests are about the console's own rules (sign-in, cookies,
// CSRF, origins, rates); the edge's side is proven against a real edge in
// cmd/sluice's browser test.
type edge struct {
	mu      sync.Mutex
	snap    Snapshot
	actions []string
}

func (e *edge) Snapshot() Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.snap
}
func (e *edge) Changed() <-chan struct{} { return nil }
func (e *edge) record(s string) error {
	e.mu.Lock()
	e.actions = append(e.actions, s)
	e.mu.Unlock()
	return nil
}
func (e *edge) Disconnect(id string, by Actor) error {
	return e.record("disconnect " + id + " by " + by.Name)
}
func (e *edge) RevokeToken(id string, by Actor) error {
	return e.record("revoke " + id + " by " + by.Name)
}
func (e *edge) ReleaseLease(k string, by Actor) error {
	return e.record("release " + k + " by " + by.Name)
}
func (e *edge) done() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.actions...)
}

const adminToken = "admin-token-for-tests"

func newConsole(t *testing.T, tls bool) (*Console, *edge, *httptest.Server) {
	t.Helper()
	e := &edge{snap: Snapshot{Edge: Edge{ID: "edge-1"}, Sessions: []Session{{ID: "s1", Owner: "alice"}}}}
	c, err := New(Config{Token: adminToken, Edges: []Backend{e}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(c.Handler())
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return c, e, srv
}

// client does not follow redirects, so each answer can be checked.
func client(srv *httptest.Server) *http.Client {
	c := srv.Client()
	jar, _ := cookiejar.New(nil)
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

func post(t *testing.T, c *http.Client, u string, form url.Values, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func get(t *testing.T, c *http.Client, u string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func signIn(t *testing.T, c *http.Client, srv *httptest.Server) *http.Cookie {
	t.Helper()
	resp := post(t, c, srv.URL+"/login", url.Values{"token": {adminToken}, "name": {"ann"}, "next": {"/agents"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/agents" {
		t.Fatalf("sign-in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieName {
			return ck
		}
	}
	t.Fatal("sign-in set no session cookie")
	return nil
}

// csrfOf reads the CSRF token off a page, as the browser's form would.
func csrfOf(t *testing.T, c *http.Client, srv *httptest.Server) string {
	t.Helper()
	_, body := get(t, c, srv.URL+"/agents", nil)
	_, rest, ok := strings.Cut(body, `name="csrf" value="`)
	if !ok {
		t.Fatalf("no CSRF token on the page:\n%.500s", body)
	}
	tok, _, _ := strings.Cut(rest, `"`)
	return tok
}

// signedIn returns a browser-like client signed in to srv and the CSRF
// token its pages carry.
func signedIn(t *testing.T, srv *httptest.Server) (*http.Client, string) {
	t.Helper()
	c := client(srv)
	signIn(t, c, srv)
	return c, csrfOf(t, c, srv)
}

func TestSignInCookieAttributes(t *testing.T) {
	for _, tls := range []bool{false, true} {
		_, _, srv := newConsole(t, tls)
		ck := signIn(t, client(srv), srv)
		if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Secure != tls {
			t.Errorf("tls %v: cookie HttpOnly %v SameSite %v Path %q Secure %v; want HttpOnly, Strict, /, Secure only over HTTPS",
				tls, ck.HttpOnly, ck.SameSite, ck.Path, ck.Secure)
		}
		if d := time.Until(ck.Expires); d < DefaultSessionTTL-time.Minute || d > DefaultSessionTTL+time.Minute {
			t.Errorf("cookie expires in %v, want about %v", d, DefaultSessionTTL)
		}
	}
}

// TestSecureCookieBehindTLSProxy: a proxy that terminated TLS and says so
// (X-Forwarded-Proto) gets a Secure cookie although the console speaks
// plain HTTP to it.
func TestSecureCookieBehindTLSProxy(t *testing.T) {
	_, _, srv := newConsole(t, false)
	resp := post(t, client(srv), srv.URL+"/login", url.Values{"token": {adminToken}}, map[string]string{"X-Forwarded-Proto": "https"})
	if cks := resp.Cookies(); len(cks) != 1 || !cks[0].Secure {
		t.Fatalf("cookies behind a TLS proxy: %v, want one Secure session cookie", cks)
	}
}

func TestPagesNeedSignIn(t *testing.T) {
	_, _, srv := newConsole(t, false)
	c := client(srv)
	resp, _ := get(t, c, srv.URL+"/owners?x=1", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fowners%3Fx%3D1" {
		t.Fatalf("a page without sign-in: %d to %q, want the sign-in form", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/api/snapshot", "/events?page=overview"} {
		if resp, body := get(t, c, srv.URL+p, nil); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Bearer") {
			t.Errorf("%s without sign-in: %d %s, want 401 naming the bearer token", p, resp.StatusCode, body)
		}
	}
	signIn(t, c, srv)
	if resp, body := get(t, c, srv.URL+"/agents", nil); resp.StatusCode != 200 || !strings.Contains(body, "alice") || !strings.Contains(body, "ann") {
		t.Fatalf("the agents page after sign-in: %d\n%.300s", resp.StatusCode, body)
	}
}

func TestWrongTokensAreLimited(t *testing.T) {
	_, _, srv := newConsole(t, false)
	c := client(srv)
	for i := range maxLoginFailures {
		if resp := post(t, c, srv.URL+"/login", url.Values{"token": {"guess"}}, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	// Now even the right token waits: the source has spent its guesses.
	if resp := post(t, c, srv.URL+"/login", url.Values{"token": {adminToken}}, nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after %d wrong tokens: %d, want 429", maxLoginFailures, resp.StatusCode)
	}
}

func TestCookieSignatureExpiryAndSignOut(t *testing.T) {
	con, _, srv := newConsole(t, false)
	ck := signIn(t, client(srv), srv)
	id, ok := con.verify(ck.Value, time.Now())
	if !ok {
		t.Fatal("the console rejects its own cookie")
	}
	payload, sig, _ := strings.Cut(ck.Value, ".")
	flipped := []byte(sig)
	flipped[3] ^= 1
	for name, v := range map[string]string{
		"tampered signature": payload + "." + string(flipped),
		"no signature":       payload,
		"expired":            con.sign(id, time.Now().Add(-time.Second)),
		"another key":        (&Console{}).sign(id, time.Now().Add(time.Hour)),
	} {
		c := client(srv)
		u, _ := url.Parse(srv.URL)
		c.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Value: v}})
		if resp, _ := get(t, c, srv.URL+"/api/snapshot", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s cookie: %d, want 401", name, resp.StatusCode)
		}
	}

	// Signing out ends the session on the console, not only in the browser:
	// the same cookie replayed is refused.
	c, csrf := signedIn(t, srv)
	u, _ := url.Parse(srv.URL)
	old := c.Jar.Cookies(u)
	if resp := post(t, c, srv.URL+"/logout", url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?out=1" {
		t.Fatalf("sign-out: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	replay := client(srv)
	replay.Jar.SetCookies(u, old)
	if resp, _ := get(t, replay, srv.URL+"/api/snapshot", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the cookie after sign-out: %d, want 401", resp.StatusCode)
	}
}

func TestActionsNeedTheCSRFToken(t *testing.T) {
	_, e, srv := newConsole(t, false)
	c, csrf := signedIn(t, srv)
	form := func(tok string) url.Values {
		v := url.Values{"edge": {"edge-1"}, "target": {"s1"}}
		if tok != "" {
			v.Set("csrf", tok)
		}
		return v
	}
	for name, tok := range map[string]string{"none": "", "wrong": strings.Repeat("0", len(csrf))} {
		if resp := post(t, c, srv.URL+"/actions/disconnect", form(tok), nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s CSRF token: %d, want 403", name, resp.StatusCode)
		}
	}
	if got := e.done(); len(got) != 0 {
		t.Fatalf("actions ran without the CSRF token: %q", got)
	}
	resp := post(t, c, srv.URL+"/actions/disconnect", form(csrf), nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/agents" {
		t.Fatalf("the action with its CSRF token: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := e.done(); len(got) != 1 || got[0] != "disconnect s1 by ann" {
		t.Fatalf("the edge was asked %q, want one disconnect of s1 by ann", got)
	}
	// The action is listed, with who did it, and the page says it is done.
	if _, body := get(t, c, srv.URL+"/", nil); !strings.Contains(body, "ann from 127.0.0.1") || !strings.Contains(body, "Session s1 disconnected.") {
		t.Fatalf("the overview after the action:\n%.2000s", body)
	}
}

func TestForeignOriginsRefused(t *testing.T) {
	_, e, srv := newConsole(t, false)
	c, csrf := signedIn(t, srv)
	form := url.Values{"edge": {"edge-1"}, "target": {"s1"}, "csrf": {csrf}}
	for name, hdr := range map[string]map[string]string{
		"foreign Origin":      {"Origin": "http://evil.example"},
		"cross-site fetch":    {"Sec-Fetch-Site": "cross-site"},
		"same-site subdomain": {"Sec-Fetch-Site": "same-site"},
	} {
		if resp := post(t, c, srv.URL+"/actions/revoke", form, hdr); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s, with a valid session and CSRF token: %d, want 403", name, resp.StatusCode)
		}
		if resp, _ := get(t, c, srv.URL+"/api/snapshot", hdr); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s reading the snapshot: %d, want 403", name, resp.StatusCode)
		}
	}
	if got := e.done(); len(got) != 0 {
		t.Fatalf("a foreign origin made the edge act: %q", got)
	}
	// Behind a proxy that terminated TLS the page's origin is https while
	// the console is reached over http: the host decides. A null origin
	// (a sandboxed frame, a privacy setting) is not the console.
	if resp := post(t, c, srv.URL+"/actions/revoke", form, map[string]string{"Origin": "https://" + strings.TrimPrefix(srv.URL, "http://")}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("own host over a TLS-terminating proxy: %d, want 303", resp.StatusCode)
	}
	if resp := post(t, c, srv.URL+"/actions/revoke", form, map[string]string{"Origin": "null"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("Origin null: %d, want 403", resp.StatusCode)
	}
	// The console's own origin passes; so does a link followed from
	// another site (a navigation), which the Strict cookie leaves signed
	// out.
	if resp := post(t, c, srv.URL+"/actions/revoke", form, map[string]string{"Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("own origin: %d, want 303", resp.StatusCode)
	}
	if resp, _ := get(t, client(srv), srv.URL+"/", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a link from another site: %d, want 303 to the sign-in form", resp.StatusCode)
	}
	// The sign-in form itself refuses a foreign origin (login CSRF).
	if resp := post(t, client(srv), srv.URL+"/login", url.Values{"token": {adminToken}}, map[string]string{"Origin": "http://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in from another origin: %d, want 403", resp.StatusCode)
	}
}

func TestBearerTokenForScripts(t *testing.T) {
	_, e, srv := newConsole(t, false)
	c := client(srv)
	bearer := map[string]string{"Authorization": "Bearer " + adminToken}
	resp, body := get(t, c, srv.URL+"/api/snapshot", bearer)
	var out struct{ Edges []Snapshot }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &out) != nil || len(out.Edges) != 1 || out.Edges[0].Edge.ID != "edge-1" {
		t.Fatalf("snapshot with the bearer token: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, c, srv.URL+"/api/snapshot", map[string]string{"Authorization": "Bearer nope"}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong bearer token: %d, want 401", resp.StatusCode)
	}
	// The bearer token is not ambient, so scripts need no CSRF token.
	if resp := post(t, c, srv.URL+"/actions/release", url.Values{"edge": {"edge-1"}, "target": {"host:a.example"}}, bearer); resp.StatusCode != 200 {
		t.Fatalf("an action with the bearer token: %d", resp.StatusCode)
	}
	if got := e.done(); len(got) != 1 || got[0] != "release host:a.example by api" {
		t.Fatalf("the edge was asked %q", got)
	}
}

func TestSignInReturnsOnlyToThisConsole(t *testing.T) {
	for next, want := range map[string]string{
		"/tunnels?x=1":         "/tunnels?x=1",
		"//evil.example/":      "/",
		"https://evil.example": "/",
		"/\\evil.example":      "/",
		"/login":               "/",
		"":                     "/",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("next %q: %q, want %q", next, got, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"Token":      {Edges: []Backend{&edge{}}},
		"Edges":      {Token: "T"},
		"SessionTTL": {Token: "T", Edges: []Backend{&edge{}}, SessionTTL: time.Second},
	} {
		_, err := New(cfg)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != name {
			t.Errorf("%s: %v, want a ConfigError naming %s", name, err, name)
		}
	}
}

// TestFleetIsAListOfEdges: with two edges the pages name each row's edge,
// and an action goes to the edge its row is on.
func TestFleetIsAListOfEdges(t *testing.T) {
	a := &edge{snap: Snapshot{Edge: Edge{ID: "edge-a"}, Sessions: []Session{{ID: "sa", Owner: "alice"}}}}
	b := &edge{snap: Snapshot{Edge: Edge{ID: "edge-b"}, Sessions: []Session{{ID: "sb", Owner: "bob"}}}}
	con, err := New(Config{Token: adminToken, Edges: []Backend{b, a}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(con.Handler())
	defer srv.Close()
	c := client(srv)
	signIn(t, c, srv)
	_, body := get(t, c, srv.URL+"/agents", nil)
	if !strings.Contains(body, "<th>Edge</th>") || strings.Index(body, "<td>edge-a</td>") > strings.Index(body, "<td>edge-b</td>") ||
		!strings.Contains(body, "edge=edge-b&amp;target=sb") {
		t.Fatalf("the fleet's agents page does not name each row's edge:\n%s", body)
	}
	post(t, c, srv.URL+"/actions/disconnect", url.Values{"edge": {"edge-b"}, "target": {"sb"}, "csrf": {csrfOf(t, c, srv)}}, nil)
	if len(a.done()) != 0 || len(b.done()) != 1 {
		t.Fatalf("edge a was asked %q, edge b %q; want only b", a.done(), b.done())
	}
	if resp := post(t, c, srv.URL+"/actions/disconnect", url.Values{"edge": {"edge-c"}, "target": {"sb"}, "csrf": {csrfOf(t, c, srv)}}, map[string]string{"Accept": "text/html"}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an action on an unknown edge: %d, want 404", resp.StatusCode)
	}
}

// TestEventsEndAtSignOut: the live stream of a browser that signed out
// ends at the next sample instead of showing the edge to a closed session.
func TestEventsEndAtSignOut(t *testing.T) {
	con, _, srv := newConsole(t, false)
	c, csrf := signedIn(t, srv)
	resp, err := c.Get(srv.URL + "/events?page=agents")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 1000)
	go func() {
		defer close(lines) // when the console ends the stream
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// Samples until a page arrives: the stream may subscribe after the
	// first one.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case l := <-lines:
			seen = l == "event: main"
		case <-tick.C:
			con.live.sample(time.Now())
		case <-deadline:
			t.Fatal("no page on the event stream")
		}
	}
	post(t, c, srv.URL+"/logout", url.Values{"csrf": {csrf}}, nil)
	deadline = time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				return
			}
		case <-tick.C:
			con.live.sample(time.Now())
		case <-deadline:
			t.Fatal("the event stream outlived the sign-out")
		}
	}
}
