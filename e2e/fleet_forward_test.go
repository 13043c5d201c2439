package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

// The agents of these tests keep one session, so that the other edges
// forward.

// fromAddr is an HTTP client that sends every request to edge from the
// loopback address ip, so the app can tell the client's address from the
// edges'. h2 makes it speak HTTP/2 with prior knowledge (h2c).
func fromAddr(t *testing.T, edge, ip string, h2 bool) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, edge)
		},
		DisableCompression:  true,
		MaxIdleConnsPerHost: 200,
	}
	if h2 {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// waitServed waits until edge serves host (it learns of a lease through its
// watch).
func waitServed(t *testing.T, c *http.Client, host string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get("http://" + host + "/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never served: %v", host, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sawFrom is an app that answers with the client address it was told of.
func sawFrom(tag string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %s %s", tag, r.Method, r.Header.Get("X-Forwarded-For"))
	})
}

func getBody(t *testing.T, c *http.Client, method, url string, body io.Reader) string {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %q %v", method, url, resp.StatusCode, b, err)
	}
	return string(b)
}

// Requests a forwarding edge cannot hand over whole (HTTP/2, bodies) go
// over kept-alive link streams: many requests, a few streams, and each
// request carries its own client's address.
func TestFleetPoolReusesLinkStreams(t *testing.T) {
	e := startFleetEdges(t, 2, nil)
	startAgentWith(t, agent.Config{Server: e.srvs[0].Addr().String(), Sessions: 1}, agent.Tunnel{Kind: control.KindHTTP, Name: "app", Local: localHTTP(t, sawFrom("app"))})
	h2 := fromAddr(t, e.srvs[1].HTTPAddr().String(), "127.0.0.5", true)
	h1c := fromAddr(t, e.srvs[1].HTTPAddr().String(), "127.0.0.6", false)
	waitServed(t, h2, "app.localhost")
	home := e.srvs[0].Status().Fleet.Edge
	before := e.srvs[1].Status().Fleet

	for range 50 {
		if got := getBody(t, h2, http.MethodGet, "http://app.localhost/", nil); got != "app GET 127.0.0.5" {
			t.Fatalf("h2 GET answered %q", got)
		}
	}
	for range 20 {
		if got := getBody(t, h1c, http.MethodPost, "http://app.localhost/", strings.NewReader("payload")); got != "app POST 127.0.0.6" {
			t.Fatalf("POST answered %q", got)
		}
	}
	v := e.srvs[1].Status().Fleet
	if n := v.ForwardedOut[home] - before.ForwardedOut[home]; n != 70 {
		t.Fatalf("the forwarding edge counted %d requests, want 70", n)
	}
	if n := v.StreamsOut[home] - before.StreamsOut[home]; n < 1 || n > 3 {
		t.Fatalf("70 sequential requests took %d link streams; want 1 to 3 (kept alive and reused)", n)
	}
	if in := e.srvs[0].Status().Fleet.ForwardedIn[v.Edge]; in < 70 {
		t.Fatalf("the serving edge counted %d requests from the forwarding one, want at least 70", in)
	}
}

// A bodiless HTTP/1.1 request hands its connection over whole: every
// request on it after the first goes to the serving edge without the
// forwarding one parsing it, on one link stream. A request on that
// connection for a host a third edge serves goes one hop further.
func TestFleetHandsAnHTTPConnectionOver(t *testing.T) {
	e := startFleetEdges(t, 3, nil)
	startAgentWith(t, agent.Config{Server: e.srvs[0].Addr().String(), Sessions: 1}, agent.Tunnel{Kind: control.KindHTTP, Name: "app", Local: localHTTP(t, sawFrom("app"))})
	startAgentWith(t, agent.Config{Server: e.srvs[2].Addr().String(), Sessions: 1}, agent.Tunnel{Kind: control.KindHTTP, Name: "other", Local: localHTTP(t, sawFrom("other"))})
	waitServed(t, viaEdge(t, e.srvs[1].HTTPAddr().String()), "app.localhost")
	waitServed(t, viaEdge(t, e.srvs[0].HTTPAddr().String()), "other.localhost")
	home := e.srvs[0].Status().Fleet.Edge
	fwd := e.srvs[1].Status().Fleet
	inBefore := e.srvs[0].Status().Fleet.ForwardedIn[fwd.Edge]

	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.7")}}
	c, err := d.Dial("tcp", e.srvs[1].HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	ask := func(host string) string {
		t.Helper()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	for range 20 {
		if got := ask("app.localhost"); got != "app GET 127.0.0.7" {
			t.Fatalf("answered %q", got)
		}
	}
	if got := ask("other.localhost"); got != "other GET 127.0.0.7" {
		t.Fatalf("a request for another host on the handed-over connection answered %q", got)
	}
	v := e.srvs[1].Status().Fleet
	if n := v.StreamsOut[home] - fwd.StreamsOut[home]; n != 1 {
		t.Fatalf("one connection took %d link streams, want 1", n)
	}
	if n := e.srvs[0].Status().Fleet.ForwardedIn[fwd.Edge] - inBefore; n != 21 {
		t.Fatalf("the serving edge counted %d requests from the forwarding one, want 21", n)
	}
}

// However many requests run at once, the forwarding edge keeps at most
// its bound of idle streams to a peer once they are done.
func TestFleetPoolIsBounded(t *testing.T) {
	e := startFleetEdges(t, 2, nil)
	const n = 100
	var arrived sync.WaitGroup
	arrived.Add(n)
	release := make(chan struct{})
	var once sync.Once
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			arrived.Done()
			<-release
		}
		fmt.Fprint(w, "ok")
	})
	startAgentWith(t, agent.Config{Server: e.srvs[0].Addr().String(), Sessions: 1}, agent.Tunnel{Kind: control.KindHTTP, Name: "app", Local: localHTTP(t, app)})
	c := fromAddr(t, e.srvs[1].HTTPAddr().String(), "127.0.0.8", true)
	waitServed(t, c, "app.localhost")
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	var done sync.WaitGroup
	for range n {
		done.Add(1)
		go func() {
			defer done.Done()
			resp, err := c.Get("http://app.localhost/hold")
			if err != nil {
				t.Error(err)
				arrived.Done()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %.300s", resp.Status, b)
				arrived.Done()
			}
		}()
	}
	arrived.Wait()
	home := e.srvs[0].Status().Fleet.Edge
	if open := e.srvs[1].Status().Fleet.StreamsOpen[home]; open < n {
		t.Fatalf("%d requests in flight on %d link streams", n, open)
	}
	once.Do(func() { close(release) })
	done.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		open := e.srvs[1].Status().Fleet.StreamsOpen[home]
		if open <= 64 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d link streams still open after the burst, want at most 64", open)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The serving edge going away in the middle of a response: the client sees
// the response cut off (not a hang, not a complete-looking body), the next
// request gets an answer, no stream to the stopped edge is kept, and every
// goroutine ends. Over the pool (HTTP/2) and on a connection handed over whole.
func TestFleetPeerGoesAwayMidRequest(t *testing.T) { peerGoesAway(t, true) }

func TestFleetPeerGoesAwayMidHandOver(t *testing.T) { peerGoesAway(t, false) }

func peerGoesAway(t *testing.T, h2 bool) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	e := startFleetEdges(t, 2, func(_ int, c *server.Config) { c.DrainTimeout = 100 * time.Millisecond })
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			w.Write(make([]byte, 1024)) // chunked: each piece is passed on at once
			w.(http.Flusher).Flush()
			started <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		fmt.Fprint(w, "ok")
	})
	defer close(release)
	startAgentWith(t, agent.Config{Server: e.srvs[0].Addr().String(), Sessions: 1}, agent.Tunnel{Kind: control.KindHTTP, Name: "app", Local: localHTTP(t, app)})
	c := fromAddr(t, e.srvs[1].HTTPAddr().String(), "127.0.0.9", h2)
	waitServed(t, c, "app.localhost")
	resp, err := c.Get("http://app.localhost/slow")
	if err != nil {
		t.Fatal(err)
	}
	<-started
	got := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- err
	}()
	e.stop[0]()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("a response cut off by the serving edge's end read as complete")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client still waits 10 s after the serving edge went away")
	}
	// The next request is answered: by the agent, once it moved its
	// session to the edge left, or with the edge's page meanwhile.
	resp, err = c.Get("http://app.localhost/")
	if err != nil {
		t.Fatalf("the request after the serving edge went away: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if open := e.srvs[1].Status().Fleet.StreamsOpen; sum(open) != 0 {
		t.Fatalf("streams still open to the stopped edge: %v", open)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
