package policy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/sluicehq/sluice/internal/browsertest"
	"github.com/sluicehq/sluice/internal/oidctest"
)

func portOf(addr string) string {
	return addr[strings.LastIndexByte(addr, ':')+1:]
}

// oidcApp is a tunnel's public side: the policy in front of an app that
// shows who it was told the visitor is and which cookies reached it.
type oidcApp struct {
	url    string
	clock  *clock
	policy *Policy
	srv    *httptest.Server
}

func startOIDCApp(t *testing.T, extra string) (*oidcApp, *oidctest.Provider) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	appURL := "http://127.0.0.1:" + portOf(srv.Listener.Addr().String())
	idp := oidctest.Start(t, appURL+OIDCCallbackPath)
	c := &clock{now: time.Now()}
	spec, err := Parse([]byte(fmt.Sprintf(`
on_http_request:
  - name: sso
    actions:
      - type: openid-connect
        config:
          issuer: %s
          client_id: %s
          client_secret: %s
          allow_domains: [example.com]
          session_duration: 1h%s
`, idp.Issuer, oidctest.ClientID, oidctest.ClientSecret, extra)), "sso.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(Options{Now: c.Now}, Layer{Source: "sso.yaml", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w, d := p.Request(w, r, netip.MustParseAddrPort(r.RemoteAddr))
		if d != nil {
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<html><body><p id=who>hello %s</p><p id=sub>%s</p><p id=cookies>%s</p></body></html>",
			r.Header.Get(HeaderEmail), r.Header.Get(HeaderSubject), r.Header.Get("Cookie"))
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return &oidcApp{url: appURL, clock: c, policy: p, srv: srv}, idp
}

func TestOIDCSignInInABrowser(t *testing.T) {
	app, _ := startOIDCApp(t, "")
	ctx := browsertest.New(t, 1280, 800, 90*time.Second)
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return v
	}
	location := func() string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	signIn := func(user, pass string) {
		t.Helper()
		do("signing in at the provider as "+user,
			chromedp.WaitVisible(css("#username")),
			chromedp.SendKeys(css("#username"), user),
			chromedp.SendKeys(css("#password"), pass),
			chromedp.Click(css("button[type=submit]")))
	}

	// Login: the page redirects to the provider, the visitor signs in, the
	// callback sets the session and returns to the page first asked for.
	do("opening a guarded page", chromedp.Navigate(app.url+"/private/page?x=1"))
	signIn(oidctest.Alice, oidctest.AlicePassword)
	do("waiting for the app", chromedp.WaitVisible(css("#who")))
	if who, loc := text("#who"), location(); who != "hello alice@example.com" || loc != app.url+"/private/page?x=1" {
		t.Fatalf("after sign-in: %q at %s", who, loc)
	}
	if cookies := text("#cookies"); strings.Contains(cookies, sessionCookie) {
		t.Fatalf("the app saw the session cookie: %q", cookies)
	}

	// The cookie: host-only, HttpOnly, SameSite=Lax, expiring with the session.
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{app.url}})
	if err != nil {
		t.Fatal(err)
	}
	var sess *network.Cookie
	for _, c := range res.Cookies {
		if c.Name == sessionCookie {
			sess = c
		}
		if strings.HasPrefix(c.Name, stateCookie) {
			t.Fatal("the state cookie outlived the callback")
		}
	}
	if sess == nil {
		t.Fatalf("no session cookie in %v", res.Cookies)
	}
	if sess.Domain != "127.0.0.1" || !sess.HTTPOnly || sess.SameSite != network.CookieSameSiteLax || sess.Session {
		t.Fatalf("session cookie %+v", sess)
	}
	if exp := time.Unix(int64(sess.Expires), 0); exp.Before(time.Now().Add(50*time.Minute)) || exp.After(time.Now().Add(70*time.Minute)) {
		t.Fatalf("session cookie expires at %s, want about an hour from now", exp)
	}

	// The cookie carries the next visit without the provider.
	do("visiting again", chromedp.Navigate(app.url+"/again"), chromedp.WaitVisible(css("#who")))
	if who := text("#who"); who != "hello alice@example.com" {
		t.Fatalf("second visit: %q", who)
	}

	// Logout ends the session: the next visit goes to the provider.
	do("signing out", chromedp.Navigate(app.url+OIDCLogoutPath), chromedp.WaitVisible(css("h1")))
	if h := text("h1"); !strings.Contains(h, "Signed out") {
		t.Fatalf("logout page: %q", h)
	}
	do("visiting after logout", chromedp.Navigate(app.url+"/after-logout"))
	signIn(oidctest.Alice, oidctest.AlicePassword)
	do("waiting for the app", chromedp.WaitVisible(css("#who")))
	if loc := location(); loc != app.url+"/after-logout" {
		t.Fatalf("after signing in again: %s", loc)
	}

	// Expiry: an hour later the session is over and the provider is asked again.
	app.clock.Advance(61 * time.Minute)
	do("visiting after expiry", chromedp.Navigate(app.url+"/later"), chromedp.WaitVisible(css("#username")))
	app.clock.Advance(-61 * time.Minute) // the provider's tokens live in real time

	// An email outside the allowed domain signs in at the provider but is refused.
	signIn(oidctest.Mallory, oidctest.MalloryPassword)
	do("waiting for the refusal", chromedp.WaitVisible(css("h1")))
	if body := text("body"); !strings.Contains(body, "403 Not allowed") || !strings.Contains(body, "mallory@elsewhere.test") {
		t.Fatalf("mallory: %q", body)
	}
}

// browserless is an HTTP client that signs in at the provider as a form
// post would; stopAt, when set, stops at the app's callback.
type browserless struct {
	c        *http.Client
	callback *url.URL
}

func newBrowserless(t *testing.T, stopAtCallback bool) *browserless {
	jar, _ := cookiejar.New(nil)
	b := &browserless{}
	b.c = &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if stopAtCallback && r.URL.Path == OIDCCallbackPath {
			b.callback = r.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	t.Cleanup(b.c.CloseIdleConnections)
	return b
}

// signIn signs in through b's client.
func (b *browserless) signIn(t *testing.T, idp *oidctest.Provider, target, user, pass string) (int, string) {
	t.Helper()
	return idp.SignIn(t, b.c, target, user, pass)
}

func TestOIDCRefusals(t *testing.T) {
	app, idp := startOIDCApp(t, "")

	t.Run("a signed-in visitor cannot claim another identity", func(t *testing.T) {
		b := newBrowserless(t, false)
		code, body := b.signIn(t, idp, app.url+"/", oidctest.Alice, oidctest.AlicePassword)
		if code != 200 || !strings.Contains(body, "hello alice@example.com") {
			t.Fatalf("%d %s", code, body)
		}
		req, _ := http.NewRequest("GET", app.url+"/", nil)
		req.Header.Set(HeaderEmail, "ceo@example.com")
		req.Header.Set(HeaderSubject, "forged")
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(got), "hello alice@example.com") || strings.Contains(string(got), "forged") {
			t.Fatalf("forged identity headers reached the app: %s", got)
		}
	})

	t.Run("an email outside the allow-list", func(t *testing.T) {
		code, body := newBrowserless(t, false).signIn(t, idp, app.url+"/", oidctest.Mallory, oidctest.MalloryPassword)
		if code != 403 || !strings.Contains(body, "may not use this tunnel") {
			t.Fatalf("%d %s", code, body)
		}
	})

	t.Run("two sign-ins at once, the first finished last", func(t *testing.T) {
		b := newBrowserless(t, false)
		formID := func(target string) string {
			resp, err := b.c.Get(target)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := regexp.MustCompile(`name="id" value="([^"]+)"`).FindSubmatch(page)
			if m == nil {
				t.Fatalf("no login form: %s", page)
			}
			return string(m[1])
		}
		first := formID(app.url + "/first")
		formID(app.url + "/second") // another tab
		resp, err := b.c.PostForm(idp.Issuer+oidctest.LoginPath, url.Values{"id": {first}, "username": {oidctest.Alice}, "password": {oidctest.AlicePassword}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "hello alice@example.com") || resp.Request.URL.Path != "/first" {
			t.Fatalf("%d at %s: %s", resp.StatusCode, resp.Request.URL, body)
		}
	})

	t.Run("a browser's own fetches start no sign-in", func(t *testing.T) {
		req, _ := http.NewRequest("GET", app.url+"/favicon.ico", nil)
		req.Header.Set("Sec-Fetch-Dest", "image")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
			t.Fatalf("%d, cookies %v", resp.StatusCode, resp.Cookies())
		}
	})

	t.Run("a state mismatch", func(t *testing.T) {
		b := newBrowserless(t, true)
		b.signIn(t, idp, app.url+"/", oidctest.Alice, oidctest.AlicePassword)
		if b.callback == nil {
			t.Fatal("never reached the callback")
		}
		q := b.callback.Query()
		q.Set("state", "not-the-state")
		b.callback.RawQuery = q.Encode()
		resp, err := b.c.Get(b.callback.String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), "state mismatch") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("a callback without the state cookie", func(t *testing.T) {
		b := newBrowserless(t, true)
		b.signIn(t, idp, app.url+"/", oidctest.Alice, oidctest.AlicePassword)
		resp, err := http.Get(b.callback.String()) // another browser
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})

	t.Run("forged and expired cookies", func(t *testing.T) {
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		try := func(value string) *http.Response {
			req, _ := http.NewRequest("GET", app.url+"/", nil)
			req.AddCookie(&http.Cookie{Name: sessionCookie, Value: value})
			resp, err := noFollow.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		o := app.policy.req[0].actions[0].(*oidcAction)
		valid, _ := o.seal.seal(session{Email: "alice@example.com", Subject: "u1", Expires: app.clock.Now().Add(time.Hour).Unix()}, sessionCookie+"|"+strings.TrimPrefix(app.url, "http://"))
		if resp := try(valid); resp.StatusCode != 200 {
			t.Fatalf("a valid cookie: %d", resp.StatusCode)
		}
		for name, v := range map[string]string{
			"garbage":          "garbage",
			"flipped bit":      valid[:len(valid)-2] + map[bool]string{true: "A", false: "B"}[valid[len(valid)-2] != 'A'] + valid[len(valid)-1:],
			"other host":       mustSeal(t, o, session{Email: "alice@example.com", Expires: app.clock.Now().Add(time.Hour).Unix()}, sessionCookie+"|other.example:80"),
			"state as session": mustSeal(t, o, session{Email: "alice@example.com", Expires: app.clock.Now().Add(time.Hour).Unix()}, stateCookie+"|"+strings.TrimPrefix(app.url, "http://")),
			"expired":          mustSeal(t, o, session{Email: "alice@example.com", Expires: app.clock.Now().Add(-time.Second).Unix()}, sessionCookie+"|"+strings.TrimPrefix(app.url, "http://")),
		} {
			resp := try(v)
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), idp.Issuer) {
				t.Errorf("%s cookie: %d to %q, want a redirect to the provider", name, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		// A key of another edge (or another client secret) does not open it.
		other, err := newSealer([]byte("another edge's key, 32 bytes...."), "openid-connect", idp.Issuer, oidctest.ClientID, oidctest.ClientSecret)
		if err != nil {
			t.Fatal(err)
		}
		forged, _ := other.seal(session{Email: "alice@example.com", Expires: app.clock.Now().Add(time.Hour).Unix()}, sessionCookie+"|"+strings.TrimPrefix(app.url, "http://"))
		if resp := try(forged); resp.StatusCode != http.StatusFound {
			t.Fatalf("a cookie sealed with another key: %d", resp.StatusCode)
		}
	})

	t.Run("a non-browser request is told, not redirected", func(t *testing.T) {
		resp, err := http.Post(app.url+"/api", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func mustSeal(t *testing.T, o *oidcAction, s session, ad string) string {
	v, err := o.seal.seal(s, ad)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOIDCProviderDownIsAClearError(t *testing.T) {
	spec, _ := Parse([]byte("on_http_request:\n  - actions: [{type: openid-connect, config: {issuer: \"http://127.0.0.1:1\", client_id: x}}]\n"), "t")
	p, err := Compile(Options{}, Layer{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	res := serve(p, get("http://a.test/"), "192.0.2.1:1", nil)
	wantStatus(t, res, 502)
	if !strings.Contains(res.rec.Body.String(), "discovery of http://127.0.0.1:1 failed") {
		t.Fatalf("body %q", res.rec.Body.String())
	}
}
