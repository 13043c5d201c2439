package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
)

// Keep-alive holds end to end: sequential requests of one public client reuse
// one stream to the agent and so one connection to the local service, piped
// or parsed, GET or POST.
func TestSequentialRequestsReuseOneLocalConnection(t *testing.T) {
	for _, parsed := range []bool{false, true} {
		t.Run(fmt.Sprintf("parsed=%v", parsed), func(t *testing.T) {
			var conns atomic.Int32
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ls := &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body); io.WriteString(w, "ok") }),
				ConnState: func(_ net.Conn, s http.ConnState) {
					if s == http.StateNew {
						conns.Add(1)
					}
				},
			}
			go ls.Serve(ln)
			t.Cleanup(func() { ls.Close() })
			srv := startEdge(t, nil)
			startAgent(t, srv, agent.Tunnel{Kind: control.KindHTTP, Name: "k", Local: ln.Addr().String(), LogRequests: parsed})
			c := viaEdge(t, srv.HTTPAddr().String())
			url := fmt.Sprintf("http://k.localhost:%d/", srv.HTTPAddr().(*net.TCPAddr).Port)
			for i := range 10 {
				method := []string{"GET", "HEAD", "POST"}[i%3]
				req, _ := http.NewRequest(method, url, nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %s", method, resp.Status)
				}
			}
			if n := conns.Load(); n > 2 {
				t.Fatalf("10 sequential requests opened %d connections to the local service, want 1 (2 at most: GET/HEAD and POST take different pools at the edge)", n)
			}
		})
	}
}
