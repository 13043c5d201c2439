package h1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// origin is a local HTTP server that counts the connections it accepted.
type origin struct {
	*httptest.Server
	conns atomic.Int32
	mu    sync.Mutex
	open  []net.Conn
}

func newOrigin(t *testing.T, h http.HandlerFunc) *origin {
	o := &origin{}
	o.Server = httptest.NewUnstartedServer(h)
	o.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			o.conns.Add(1)
			o.mu.Lock()
			o.open = append(o.open, c)
			o.mu.Unlock()
		}
	}
	o.Start()
	t.Cleanup(o.Close)
	return o
}

// dropAll closes every connection the origin accepted, as an idle timeout
// on its side would.
func (o *origin) dropAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range o.open {
		c.Close()
	}
	o.open = nil
}

func newPool(t *testing.T, o *origin) *Pool {
	addr := o.Listener.Addr().String()
	p := &Pool{
		Dial: func(ctx context.Context, _ *http.Request) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
		Fallback:    &http.Transport{},
		MaxIdle:     4,
		IdleTimeout: time.Minute,
	}
	t.Cleanup(p.CloseIdleConnections)
	return p
}

func do(t *testing.T, p *Pool, method, url string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s body: %v", method, url, err)
	}
	return resp, string(b)
}

func TestReusesOneConnectionForSequentialRequests(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.Header().Set("Trailer", "X-Sum")
			w.Write([]byte("part1,"))
			w.(http.Flusher).Flush()
			w.Write([]byte("part2"))
			w.Header().Set("X-Sum", "42")
			return
		}
		if r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	})
	p := newPool(t, o)
	for i := range 5 {
		if _, body := do(t, p, "GET", o.URL+fmt.Sprintf("/%d", i)); body != fmt.Sprintf("GET /%d", i) {
			t.Fatalf("body %q", body)
		}
	}
	resp, body := do(t, p, "GET", o.URL+"/chunked")
	if body != "part1,part2" || resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("chunked body %q trailer %v", body, resp.Trailer)
	}
	if resp, body := do(t, p, "HEAD", o.URL+"/h"); resp.StatusCode != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(t, p, "GET", o.URL+"/empty"); resp.StatusCode != 204 {
		t.Fatalf("204: %d", resp.StatusCode)
	}
	if _, body := do(t, p, "GET", o.URL+"/last"); body != "GET /last" {
		t.Fatalf("body %q", body)
	}
	if n := o.conns.Load(); n != 1 {
		t.Fatalf("%d connections for sequential requests, want 1", n)
	}
}

func TestRetriesOnceWhenAnIdleConnectionWasClosed(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	p := newPool(t, o)
	do(t, p, "GET", o.URL)
	o.dropAll()
	if _, body := do(t, p, "GET", o.URL); body != "ok" {
		t.Fatalf("after the origin dropped the idle connection: %q", body)
	}
	if n := o.conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the dropped one and its replacement)", n)
	}
}

func TestAbandonedBodyAndConnectionCloseAreNotReused(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, strings.Repeat("x", 100000))
	})
	p := newPool(t, o)
	req, _ := http.NewRequest("GET", o.URL+"/big", nil)
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 10))
	resp.Body.Close() // abandoned half read: its bytes would corrupt the next response
	do(t, p, "GET", o.URL+"/close")
	do(t, p, "GET", o.URL+"/after")
	if n := o.conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
	if len(p.idle) != 1 {
		t.Fatalf("%d idle connections, want 1", len(p.idle))
	}
}

func TestInformationalResponsesAreSkipped(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	})
	resp, body := do(t, newPool(t, o), "GET", o.URL)
	if resp.StatusCode != 200 || body != "final" {
		t.Fatalf("got %d %q, want the final 200", resp.StatusCode, body)
	}
}

func TestCancellationUnblocksAWaitingRequest(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	p := newPool(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", o.URL, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := p.RoundTrip(req)
		errc <- err
	}()
	time.AfterFunc(50*time.Millisecond, cancel)
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled request stayed blocked")
	}
}

func TestOtherRequestsGoToTheFallback(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	})
	p := newPool(t, o)
	req, _ := http.NewRequest("POST", o.URL, strings.NewReader("payload"))
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "POST payload" {
		t.Fatalf("fallback answered %q", b)
	}
	if len(p.idle) != 0 {
		t.Fatal("the fast path pooled a connection for a POST")
	}
}

func TestIdleConnectionsExpire(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	p := newPool(t, o)
	p.IdleTimeout = time.Nanosecond
	do(t, p, "GET", o.URL)
	do(t, p, "GET", o.URL)
	if n := o.conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: an expired idle connection must not be reused", n)
	}
}
