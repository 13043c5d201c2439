package inspect_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/internal/browsertest"
)

// snapshotHold sits between chromium and the inspector and holds each
// answer of /api/requests after the inspector has written it, until the
// test lets it go: the page then gets a snapshot older than what its event
// stream shows, as when a request arrives while the page loads.
type snapshotHold struct {
	gates  chan chan struct{} // one per held snapshot, in the order taken
	done   chan struct{}      // closed at the end: nothing is held any more
	mu     sync.Mutex
	served int // snapshots written to the browser
}

// next waits for the next snapshot taken and returns its release.
func (h *snapshotHold) next(t *testing.T, what string) func() {
	t.Helper()
	select {
	case g := <-h.gates:
		return func() { close(g) }
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the page asked for no list in 10 s", what)
		return nil
	}
}

func (h *snapshotHold) servedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.served
}

func (h *snapshotHold) proxy(t *testing.T, inspector string) *httptest.Server {
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host, r.Out.Host = "http", inspector, inspector
			if r.In.Header.Get("Origin") != "" {
				r.Out.Header.Set("Origin", "http://"+inspector)
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.URL.Path != "/api/requests" {
				return nil
			}
			// The inspector has answered: the snapshot is taken.
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(strings.NewReader(string(body)))
			g := make(chan struct{})
			h.gates <- g
			select {
			case <-g:
			case <-h.done:
			}
			return err
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp.ServeHTTP(flushHeader{w}, r)
		if r.URL.Path == "/api/requests" {
			h.mu.Lock()
			h.served++
			h.mu.Unlock()
		}
	}))
	t.Cleanup(func() {
		close(h.done)
		srv.CloseClientConnections() // the page's event stream
		srv.Close()
	})
	return srv
}

// flushHeader sends the header as soon as it is written, so the page's
// event stream opens through the proxy before the first event.
type flushHeader struct{ http.ResponseWriter }

func (f flushHeader) WriteHeader(code int) {
	f.ResponseWriter.WriteHeader(code)
	f.ResponseWriter.(http.Flusher).Flush()
}

func (f flushHeader) Flush() { f.ResponseWriter.(http.Flusher).Flush() }

// TestInspectorKeepsRequestsArrivingDuringLoad loads the page again and
// again, each time sending a webhook through the tunnel after the page
// asked for its list and before the answer arrived. The event stream shows
// the webhook first; the older list that follows must not wipe it out.
func TestInspectorKeepsRequestsArrivingDuringLoad(t *testing.T) {
	ctx := browsertest.New(t, 1400, 800, 90*time.Second)
	f := startTunnel(t)
	h := &snapshotHold{gates: make(chan chan struct{}, 16), done: make(chan struct{})}
	proxy := h.proxy(t, f.in.Addr().String())
	// The login link sets the cookie; every later load goes through the proxy.
	if err := chromedp.Do(ctx, chromedp.Navigate(f.in.URL()), chromedp.WaitVisible(chromedp.CSS(`#live:not(.off)`))); err != nil {
		t.Fatal(err)
	}
	const loads = 12
	for i := 1; i <= loads; i++ {
		served := h.servedCount()
		if err := chromedp.Do(ctx, chromedp.Navigate(proxy.URL+"/")); err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
		// The list asked for on load goes through; the one asked for when
		// the event stream opened is held once the inspector has taken it.
		h.next(t, fmt.Sprintf("load %d", i))()
		release := h.next(t, fmt.Sprintf("load %d, stream open", i))
		f.post(t, fmt.Sprintf(`{"load":%d}`, i))
		// The stream shows the webhook; mark the row it drew.
		mark := fmt.Sprintf(`(() => { const r = document.querySelector('#rows tr[data-id="%d"]'); if (!r) return false; r.streamed = true; return true; })()`, i)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](mark, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("load %d: the webhook never showed from the event stream: %v", i, err)
		}
		release()
		waitFor(t, fmt.Sprintf("load %d: both lists reach the browser", i), func() bool { return h.servedCount() >= served+2 })
		// Wait until the held list has replaced the rows (the marked row
		// is gone or drawn anew); every webhook sent so far must be listed.
		replaced := fmt.Sprintf(`(() => { const r = document.querySelector('#rows tr[data-id="%d"]'); return !r || !r.streamed; })()`, i)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](replaced, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("load %d: the list was never applied: %v", i, err)
		}
		ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#rows tr.req")].map(r => r.dataset.id)`))
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != i || ids[0] != fmt.Sprint(i) {
			t.Fatalf("load %d: the list shows requests %v, want %d of them, newest #%d first (it is in /api/requests)", i, ids, i, i)
		}
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
