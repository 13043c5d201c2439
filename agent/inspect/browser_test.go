package inspect_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/agent/inspect"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/browsertest"
	"github.com/sluicehq/sluice/server"
)

// tunnelFixture is a real edge, an agent with the inspector as its HTTP
// middleware and a local service that counts what reaches it.
type tunnelFixture struct {
	in      *inspect.Inspector
	edge    *server.Server
	public  string // http://NAME.localhost:PORT
	hits    atomic.Int64
	last    atomic.Value // the latest /webhook body, a string
	service *httptest.Server
}

func startTunnel(t *testing.T) *tunnelFixture {
	t.Helper()
	f := &tunnelFixture{}
	f.service = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/webhook" {
			f.last.Store(string(b))
			f.hits.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":true,"path":%q}`, r.URL.Path)
	}))
	t.Cleanup(f.service.Close)
	edge, err := server.New(server.Config{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", Domain: "localhost", Tokens: []string{"T"}})
	if err != nil {
		t.Fatal(err)
	}
	f.edge = edge
	in, err := inspect.New(inspect.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	f.in = in
	assigned := make(chan control.Assigned, 4)
	a, err := agent.New(agent.Config{
		Server: edge.Addr().String(), Token: "T", HTTPMiddleware: in.Wrap,
		Tunnels:    []agent.Tunnel{{Kind: control.KindHTTP, Name: "webhooks", Local: f.service.Listener.Addr().String()}},
		OnAssigned: func(_ int, a control.Assigned) { assigned <- a },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 3)
	go func() { edge.Serve(ctx); done <- struct{}{} }()
	go func() { a.Run(ctx); done <- struct{}{} }()
	go func() { in.Serve(); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		in.Close()
		for range 3 {
			<-done
		}
	})
	select {
	case as := <-assigned:
		f.public = as.URL
	case <-time.After(10 * time.Second):
		t.Fatal("tunnel not assigned in 10 s")
	}
	return f
}

// post sends a webhook through the public side of the tunnel.
func (f *tunnelFixture) post(t *testing.T, body string) {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", f.edge.HTTPAddr().String())
		},
	}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest("POST", f.public+"/webhook?source=test", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer very-secret-token")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("webhook through the tunnel: %s", resp.Status)
	}
}

// TestInspectorInChromium drives Debian's chromium: the inspector opened
// from its printed link shows a request sent through a real tunnel without a
// reload, opens it, replays it (the local service sees it twice), and a
// page on another origin cannot make it replay anything.
func TestInspectorInChromium(t *testing.T) {
	ctx := browsertest.New(t, 1400, 800, 90*time.Second)
	f := startTunnel(t)
	shots := browsertest.ScreenshotDir(t)

	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return v
	}
	timeOrigin := func() float64 {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`performance.timeOrigin`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	do("opening the inspector from its link", chromedp.Navigate(f.in.URL()), chromedp.WaitVisible(css(`#live:not(.off)`)))
	origin := timeOrigin()
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); strings.Contains(loc, "secret=") {
		t.Errorf("the secret stays in the address bar: %s", loc)
	}

	// A request through the tunnel appears in the open page by itself.
	f.post(t, `{"event":"invoice.paid","amount":4200}`)
	do("waiting for the request in the list", chromedp.WaitVisible(css(`#rows tr.req`)))
	if row := text(`#rows tr.req`); !strings.Contains(row, "POST") || !strings.Contains(row, "/webhook?source=test") || !strings.Contains(row, "200") {
		t.Fatalf("row shows %q", row)
	}
	if timeOrigin() != origin {
		t.Fatal("the page reloaded to show the request; it must arrive live")
	}
	f.post(t, `{"event":"invoice.sent","amount":99}`) // a second row for the screenshot
	do("waiting for the second request", chromedp.WaitVisible(css(`#rows tr.req:nth-child(2)`)), browsertest.Screenshot(filepath.Join(shots, "inspector-list.png")))

	// Open the first request: headers masked, JSON body pretty-printed.
	do("opening the request", chromedp.Click(css(`#rows tr.req:last-child`)), chromedp.WaitVisible(css(`#detail:not(.hidden)`)), chromedp.WaitVisible(css(`#req pre.body`)))
	if head := text(`#detail-head`); !strings.Contains(head, "POST /webhook?source=test") {
		t.Fatalf("detail head %q", head)
	}
	reqView := text(`#req`)
	if !strings.Contains(reqView, `"event": "invoice.paid"`) {
		t.Fatalf("request body not pretty-printed: %q", reqView)
	}
	if strings.Contains(reqView, "very-secret-token") || !strings.Contains(reqView, "characters hidden") {
		t.Fatalf("the Authorization header is not masked: %q", reqView)
	}
	do("screenshot", browsertest.Screenshot(filepath.Join(shots, "inspector-detail.png")))

	// Replay: the local service gets the webhook again, and the replay
	// shows in the list, marked.
	before := f.hits.Load()
	do("replaying", chromedp.Click(css(`#replay`)), chromedp.WaitVisible(css(`#rows tr.req .badge.replay`)))
	if got := f.hits.Load(); got != before+1 || got != 3 {
		t.Fatalf("the local service saw /webhook %d times (before the replay %d), want 3: two sent, one replayed", got, before)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#action-msg").textContent.startsWith("sent as #3: 200")`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("replay message %q: %v", text(`#action-msg`), err)
	}
	do("screenshot", browsertest.Screenshot(filepath.Join(shots, "inspector-replay.png")))

	// Edit and replay: the local service gets the edited body.
	do("editing and replaying",
		chromedp.Click(css(`#edit`)),
		chromedp.WaitVisible(css(`#editor textarea[name=body]`)),
		chromedp.SetValue(css(`#editor textarea[name=body]`), `{"event":"invoice.edited"}`),
		chromedp.Click(css(`#editor button[type=submit]`)),
		chromedp.WaitVisible(css(`#rows tr.req:nth-child(4)`)),
	)
	if got, last := f.hits.Load(), f.last.Load(); got != 4 || last != `{"event":"invoice.edited"}` {
		t.Fatalf("after edit and replay the service saw %d webhooks, the last %q", got, last)
	}

	// Filters narrow the live list.
	do("filtering", chromedp.SendKeys(css(`#filters input[name=path]`), "no-such-path"), chromedp.WaitVisible(css(`#rows tr.empty`)))
	do("clearing the filters", chromedp.Click(css(`#filters button[type=reset]`)), chromedp.WaitVisible(css(`#rows tr.req:nth-child(4)`)))

	// A page of another origin, in the same browser that holds the cookie,
	// tries to replay (CSRF) and to read the list: both refused.
	var csrfHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		csrfHits.Add(1)
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><script>
window.result = "pending";
fetch("http://%[1]s/api/requests/1/replay", {method: "POST", mode: "no-cors", credentials: "include", body: "{}"})
  .then(() => fetch("http://%[1]s/api/requests", {credentials: "include"}))
  .then(r => r.text()).then(t => { window.result = "read: " + t; }, e => { window.result = "blocked: " + e; });
</script>`, f.in.Addr().String())
	}))
	defer evil.Close()
	do("loading a foreign page", chromedp.Navigate(evil.URL))
	result, err := chromedp.Run(ctx, chromedp.Poll[string](`window.result !== "pending" && window.result`, chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("the foreign page: %v", err)
	}
	if strings.HasPrefix(result, "read:") {
		t.Fatalf("a foreign page read captured traffic: %.200s", result)
	}
	if got := f.hits.Load(); got != 4 {
		t.Fatalf("a foreign page made the inspector replay: the service saw %d webhooks, want 4", got)
	}
	if csrfHits.Load() == 0 {
		t.Fatal("the foreign page was never loaded")
	}

	// The API itself, without a browser: no secret, or a foreign Origin.
	for _, tc := range []struct {
		auth, origin string
		want         int
	}{{"", "", 401}, {"Bearer " + f.in.Secret(), "http://evil.example", 403}, {"Bearer " + f.in.Secret(), "", 200}} {
		req, _ := http.NewRequest("GET", "http://"+f.in.Addr().String()+"/api/requests", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("auth %q origin %q: %d, want %d", tc.auth, tc.origin, resp.StatusCode, tc.want)
		}
	}
}
