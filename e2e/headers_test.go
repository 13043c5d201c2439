package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
)

// rawLocal is a local service that answers every request on a connection
// with the same canned bytes, so a test controls the exact response.
func rawLocal(t *testing.T, response string) (addr string, seen chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seen = make(chan string, 16)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					var head strings.Builder
					req.Header.Write(&head)
					select {
					case seen <- head.String():
					default:
					}
					io.WriteString(c, response)
				}
			}()
		}
	}()
	return ln.Addr().String(), seen
}

func TestHopByHopHeadersStopAtTheEdge(t *testing.T) {
	local, seen := rawLocal(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=5\r\nX-Public: yes\r\n\r\nok")
	srv := startEdge(t, nil)
	startAgent(t, srv, agent.Tunnel{Kind: control.KindHTTP, Name: "hop", Local: local}) // piped: the edge alone decides
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://hop.localhost:%d/", srv.HTTPAddr().(*net.TCPAddr).Port), nil)
	req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Te", "trailers")
	req.Header.Set("X-Custom", "kept")
	resp, err := viaEdge(t, srv.HTTPAddr().String()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	head := <-seen
	for _, gone := range []string{"Proxy-Authorization", "Keep-Alive"} {
		if strings.Contains(head, gone+":") {
			t.Errorf("the local service received %s:\n%s", gone, head)
		}
	}
	if !strings.Contains(head, "Te: trailers") || !strings.Contains(head, "X-Custom: kept") {
		t.Errorf("end-to-end headers lost:\n%s", head)
	}
	for _, gone := range []string{"X-Private", "Keep-Alive"} {
		if resp.Header.Get(gone) != "" {
			t.Errorf("the client received %s: %q", gone, resp.Header.Get(gone))
		}
	}
	if resp.Header.Get("X-Public") != "yes" {
		t.Errorf("X-Public lost: %v", resp.Header)
	}
}

func TestStreamedResponsesFlushAndKeepTrailers(t *testing.T) {
	next := make(chan struct{})
	local := localHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "second\n")
		w.Header().Set("X-Checksum", "abc")
	}))
	srv := startEdge(t, nil)
	startAgent(t, srv,
		agent.Tunnel{Kind: control.KindHTTP, Name: "piped", Local: local},
		agent.Tunnel{Kind: control.KindHTTP, Name: "parsed", Local: local, LogRequests: true})
	c := viaEdge(t, srv.HTTPAddr().String())
	for _, name := range []string{"piped", "parsed"} {
		resp, err := c.Get(fmt.Sprintf("http://%s.localhost:%d/", name, srv.HTTPAddr().(*net.TCPAddr).Port))
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		line, err := br.ReadString('\n')
		if err != nil || line != "first\n" {
			t.Fatalf("%s: the first piece did not arrive before the service wrote the second: %q %v", name, line, err)
		}
		next <- struct{}{}
		rest, _ := io.ReadAll(br)
		resp.Body.Close()
		if string(rest) != "second\n" || resp.Trailer.Get("X-Checksum") != "abc" {
			t.Fatalf("%s: rest %q trailer %v", name, rest, resp.Trailer)
		}
	}
}

// cutOffLocal answers with the start of a response and then hangs up.
func cutOffLocal(t *testing.T, partial string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					io.WriteString(c, partial)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestACutOffResponseReachesTheClientAsAnError(t *testing.T) {
	for name, partial := range map[string]string{
		"chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
		"length":  "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello",
	} {
		local := cutOffLocal(t, partial)
		srv := startEdge(t, nil)
		startAgent(t, srv,
			agent.Tunnel{Kind: control.KindHTTP, Name: "piped", Local: local},
			agent.Tunnel{Kind: control.KindHTTP, Name: "parsed", Local: local, LogRequests: true})
		c := viaEdge(t, srv.HTTPAddr().String())
		for _, tun := range []string{"piped", "parsed"} {
			resp, err := c.Get(fmt.Sprintf("http://%s.localhost:%d/", tun, srv.HTTPAddr().(*net.TCPAddr).Port))
			if err != nil {
				continue // refused outright: also not mistaken for complete
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusBadGateway {
				t.Errorf("%s/%s: the client read %s %q as a complete response", name, tun, resp.Status, body)
			}
		}
	}
}
