package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/internal/browsertest"
	"github.com/sluicehq/sluice/internal/testutil"
)

const consoleTokens = `# Agents' tokens for the console test.
tokens:
  - token: alice-secret   # alice's laptop
    owner: alice
    names: ["alice-*"]
    max_tunnels: 4
  - token: bob-secret
    owner: bob
    max_streams: 64
`

// TestConsoleInChromium drives the edge's console in Debian's chromium,
// with the built binary as the edge and as its agents: sign-in, a new
// tunnel and its traffic appearing without a reload, a foreign page and a
// request without the CSRF token refused, the three actions (disconnect,
// revoke: the agent exits 3 and the tokens file loses the entry, release a
// lease), and sign-out.
func TestConsoleInChromium(t *testing.T) {
	ctx := browsertest.New(t, 1360, 820, 3*time.Minute)
	shots := browsertest.ScreenshotDir(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte(consoleTokens), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	edge := startProc(t, "server", "--listen", listen, "--http", httpAddr, "--domain", "localhost", "--tokens-file", tokens,
		"--insecure", "--admin", admin, "--admin-token", "console-admin-token", "--reclaim-grace", "10m")
	edge.waitLine(`admin view on http://` + admin)
	base := "http://" + admin
	host, _ := os.Hostname()
	edgeID := net.JoinHostPort(host, strings.Split(listen, ":")[1])
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(strings.Repeat("sluice ", 2000)))
	}))
	defer svc.Close()

	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v\nedge stderr:\n%s", what, err, edge.stderr.String())
		}
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	poll := func(what, js string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("%s: %v\nedge stderr:\n%s", what, err, edge.stderr.String())
		}
	}
	shot := func(name string) {
		t.Helper()
		do("screenshot "+name, browsertest.Screenshot(filepath.Join(shots, name)))
	}

	// A wrong token is refused, and counted among the refusals.
	bad := startProc(t, "http", svc.Listener.Addr().String(), "--server", listen, "--token", "guess", "--insecure")
	if code := bad.wait(); code != 3 {
		t.Fatalf("an agent with a wrong token exited %d, want 3", code)
	}

	// Sign in: the page asked for comes back after the sign-in form.
	do("opening the console", chromedp.Navigate(base+"/tunnels"), chromedp.WaitVisible(css(`input[name=token]`)))
	do("a wrong admin token",
		chromedp.SendKeys(css(`input[name=token]`), "not-the-token"),
		chromedp.Submit(css(`input[name=token]`)),
		chromedp.WaitVisible(css(`.flash.bad`)))
	do("signing in",
		chromedp.SetValue(css(`input[name=token]`), "console-admin-token"),
		chromedp.SendKeys(css(`input[name=name]`), "ann"),
		shotAction(shots, "console-login.png"),
		chromedp.Submit(css(`input[name=token]`)),
		chromedp.WaitVisible(css(`#live:not(.off)`)))
	if loc := eval(`location.pathname`); loc != "/tunnels" {
		t.Fatalf("after signing in the console shows %s, want /tunnels", loc)
	}
	if c := eval(`document.cookie`); c != "" {
		t.Fatalf("the session cookie is readable by scripts (not HttpOnly): %q", c)
	}
	origin := eval(`String(performance.timeOrigin)`)

	// A new tunnel and its traffic appear without a reload.
	alice := startProc(t, "http", svc.Listener.Addr().String(), "--server", listen, "--token", "alice-secret", "--insecure", "--name", "alice-web")
	aliceURL := alice.waitLine(`^Forwarding (http://\S+)`)[1]
	do("waiting for the new tunnel", chromedp.WaitVisible(css(`tr.tunnel[data-url="`+aliceURL+`"]`)))
	bob := startProc(t, "tcp", svc.Listener.Addr().String(), "--server", listen, "--token", "bob-secret", "--insecure")
	bob.waitLine(`^Forwarding tcp://`)
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := viaIngress(httpAddr)
		defer c.CloseIdleConnections()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
			path := "/"
			if i%9 == 8 {
				path = "/missing"
			}
			resp, err := c.Post(aliceURL+path, "text/plain", strings.NewReader(strings.Repeat("x", 1000*(1+i%7))))
			if err != nil {
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			sent.Add(1)
		}
	}()
	stopTraffic := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopTraffic()
	row := `tr.tunnel[data-url="` + aliceURL + `"]`
	poll("the tunnel's traffic showing live", `(() => {
		const r = document.querySelector('`+row+`');
		return !!r && r.querySelector('.sparkcell .rate').textContent !== "0 B/s" &&
			Number(r.querySelector('.st.s2').textContent) >= 20 && Number(r.querySelector('.st.s4').textContent) >= 1 &&
			r.querySelectorAll('.spark polyline.in').length === 1;
	})()`)
	poll("a few seconds of sparkline", `document.querySelector('`+row+` .spark polyline.in').getAttribute('points').split(' ').length >= 6`)
	shot("console-tunnels.png")
	if eval(`String(performance.timeOrigin)`) != origin {
		t.Fatal("the page reloaded to show the tunnel; it must arrive live")
	}
	// Disconnect bob's session: the agent reconnects on its own.
	do("disconnect bob",
		chromedp.Navigate(base+"/agents"),
		chromedp.WaitVisible(css(`tr.session`)),
		chromedp.Click(css(`tr.session[data-owner=bob] a[href*="confirm/disconnect"]`)))
	do("the disconnect's confirmation", chromedp.WaitVisible(css(`#confirm`)))
	target := eval(`document.querySelector('input[name=target]').value`)
	do("confirming", chromedp.Click(css(`#confirm`)), chromedp.WaitVisible(css(`#flash`)))
	poll("the session gone and back", `!document.querySelector('tr.session[data-session="`+target+`"]') && document.querySelectorAll('tr.session').length === 2`)

	do("the overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(css(`#live:not(.off)`)))
	poll("the overview's counts", `document.querySelector('#n-tunnels').textContent === "2" && document.querySelector('#rate-total').textContent !== "0 B/s"`)
	shot("console-overview.png")
	stopTraffic()
	do("the agents", chromedp.Navigate(base+"/agents"), chromedp.WaitVisible(css(`tr.session`)))
	if v := eval(`document.querySelector('#sessions').textContent`); !strings.Contains(v, "sluice-agent/") || !strings.Contains(v, "alice") || !strings.Contains(v, "bob") {
		t.Fatalf("the agents page lacks the agents' versions or owners: %q", v)
	}
	shot("console-agents.png")
	do("the refusals", chromedp.Navigate(base+"/refusals"), chromedp.WaitVisible(css(`#refusals .badge.auth`)))
	shot("console-refusals.png")

	// A page of another origin, in the browser holding the session, tries
	// to revoke bob's token with a form and with fetch: refused.
	var evilHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilHits.Add(1)
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><body><form id=f method=post action="%[1]s/actions/revoke" target=sink>
<input name=edge value="%[2]s"><input name=target value="all"></form><iframe name=sink></iframe><script>
window.result = "pending";
document.getElementById("f").submit();
fetch("%[1]s/actions/disconnect", {method: "POST", mode: "no-cors", credentials: "include", body: new URLSearchParams({edge: "%[2]s", target: "x"})})
  .then(() => fetch("%[1]s/api/snapshot", {credentials: "include"}))
  .then(r => r.text()).then(t => { window.result = "read: " + t; }, e => { window.result = "blocked: " + e; });
</script>`, base, edgeID)
	}))
	defer evil.Close()
	do("a foreign page", chromedp.Navigate(evil.URL))
	poll("the foreign page's attempt", `window.result !== "pending"`)
	if r := eval(`window.result`); strings.HasPrefix(r, "read:") {
		t.Fatalf("a foreign page read the console: %.200s", r)
	}
	if evilHits.Load() == 0 {
		t.Fatal("the foreign page was never loaded")
	}
	// The console's own origin, without the form's CSRF token: refused.
	do("back to the console", chromedp.Navigate(base+"/owners"), chromedp.WaitVisible(css(`tr.owner[data-owner=alice]`)))
	disconnects := strings.Count(edge.stderr.String(), "disconnected this agent session")
	code := eval(`fetch("/api/snapshot").then(r => r.json()).then(j => fetch("/actions/disconnect", {method: "POST",
		body: new URLSearchParams({edge: j.edges[0].edge.id, target: j.edges[0].sessions[0].id})})).then(r => String(r.status))`)
	if code != "403" {
		t.Fatalf("a same-origin action without the CSRF token answered %s, want 403", code)
	}
	if strings.Count(edge.stderr.String(), "disconnected this agent session") != disconnects {
		t.Fatalf("a session was disconnected without the CSRF token:\n%s", edge.stderr.String())
	}
	if b, _ := os.ReadFile(tokens); string(b) != consoleTokens {
		t.Fatalf("the tokens file changed before any revoke:\n%s", b)
	}
	select {
	case <-alice.done:
		t.Fatalf("alice's agent exited (%d) before its token was revoked; stderr:\n%s", alice.code, alice.stderr.String())
	default:
	}
	shot("console-owners.png")

	// Revoke alice's token: her agent is told and exits 3, the tokens file
	// loses her entry and keeps bob's and the comments.
	do("revoke alice's token",
		chromedp.Navigate(base+"/owners"),
		chromedp.Click(css(`tr.owner[data-owner=alice] a[href*="confirm/revoke"]`)),
		chromedp.WaitVisible(css(`#confirm`)))
	shot("console-confirm-revoke.png")
	do("confirming the revoke", chromedp.Click(css(`#confirm`)), chromedp.WaitVisible(css(`#flash`)))
	if code := alice.wait(); code != 3 {
		t.Fatalf("alice's agent exited %d after its token was revoked, want 3; stderr:\n%s", code, alice.stderr.String())
	}
	after, _ := os.ReadFile(tokens)
	if strings.Contains(string(after), "alice-secret") || !strings.Contains(string(after), "bob-secret") || !strings.Contains(string(after), "# Agents' tokens") {
		t.Fatalf("the tokens file after the revoke:\n%s", after)
	}
	edge.waitStderr(`token revoked from the console.*by="?ann from 127.0.0.1`, 5*time.Second)

	// alice's address is held for her in grace; release it.
	do("release alice's address",
		chromedp.Navigate(base+"/tunnels"),
		chromedp.WaitVisible(css(`#leases a[href*="confirm/release"]`)),
		chromedp.Click(css(`#leases a[href*="confirm/release"]`)),
		chromedp.WaitVisible(css(`#confirm`)),
		chromedp.Click(css(`#confirm`)),
		chromedp.WaitVisible(css(`#flash`)))
	poll("the lease gone", `!document.querySelector('#leases a[href*="confirm/release"]')`)
	edge.waitStderr(`lease released from the console`, 5*time.Second)
	do("the overview's action log", chromedp.Navigate(base+"/"), chromedp.WaitVisible(css(`#live:not(.off)`)))
	if v := eval(`document.querySelector('main').textContent`); strings.Count(v, "ann from 127.0.0.1") < 3 {
		t.Fatalf("the overview does not list the three actions by ann: %q", v)
	}

	// Sign out: the console asks for the token again.
	do("signing out", chromedp.Click(css(`#logout`)), chromedp.WaitVisible(css(`input[name=token]`)))
	do("after signing out", chromedp.Navigate(base+"/owners"), chromedp.WaitVisible(css(`input[name=token]`)))
	if s := eval(`fetch("/api/snapshot").then(r => String(r.status))`); s != "401" {
		t.Fatalf("the API after signing out answered %s, want 401", s)
	}

	for _, p := range []*proc{bob, edge} {
		if code := p.stop(syscall.SIGTERM); code != 0 {
			t.Errorf("%v exited %d; stderr:\n%s", p.cmd.Args, code, p.stderr.String())
		}
	}
	t.Logf("%d requests through the tunnel while the console watched", sent.Load())
}

func shotAction(dir, name string) chromedp.Action[chromedp.Void] {
	return browsertest.Screenshot(filepath.Join(dir, name))
}
