package e2e

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/server"
)

// A certificate is obtained once for the fleet: handshakes for a new name
// arriving on two edges at once make one order at the CA, and both edges
// serve the certificate it issued.
func TestFleetObtainsACertificateOnce(t *testing.T) {
	p := testutil.StartPebble(t)
	edges, _ := startFleetWithMetrics(t, 2, func(_ int, c *server.Config) {
		c.Domain = "sluice.test"
		c.HTTPS = "127.0.0.1:0"
		c.ACMEDirectory = p.Directory
		c.ACMERoots = p.APIRoots
	})
	local := localHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	startAgent(t, edges[0], agent.Tunnel{Kind: control.KindHTTP, Name: "app", Local: local})
	// Edge 1 serves the name once its watch has seen the lease.
	deadline := time.Now().Add(10 * time.Second)
	for !fleetKnows(edges[1], "host:app.sluice.test") {
		if time.Now().After(deadline) {
			t.Fatal("edge 1 did not learn of the lease within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	const perEdge = 4
	leaves := make([][]byte, 2*perEdge)
	errs := make([]error, 2*perEdge)
	var wg sync.WaitGroup
	for i := range leaves {
		e := edges[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := httpsClient(t, e.HTTPSAddr().String(), p.Roots)
			resp, err := c.Get(fmt.Sprintf("https://app.sluice.test:%d/", e.HTTPSAddr().(*net.TCPAddr).Port))
			if err != nil {
				errs[i] = err
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "app" {
				errs[i] = fmt.Errorf("%s %q", resp.Status, body)
				return
			}
			leaves[i] = resp.TLS.PeerCertificates[0].Raw
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d through edge %d: %v", i, i%2, err)
		}
	}
	if n := p.Orders(); n != 1 {
		t.Fatalf("the CA saw %d orders for one name on two edges, want 1", n)
	}
	for i := range leaves {
		if !bytes.Equal(leaves[i], leaves[0]) {
			t.Fatalf("edge %d served another certificate than edge 0", i%2)
		}
	}
	// Renewal aside, a later handshake asks the store nothing new and the
	// CA nothing at all.
	conn, err := tls.Dial("tcp", edges[1].HTTPSAddr().String(), &tls.Config{ServerName: "app.sluice.test", RootCAs: p.Roots})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if n := p.Orders(); n != 1 {
		t.Fatalf("a later handshake made the CA see %d orders", n)
	}
}

// fleetKnows reports whether e's view of the fleet has the lease key.
func fleetKnows(e *server.Server, key string) bool {
	v := e.Status().Fleet
	if v == nil {
		return false
	}
	for _, l := range v.Leases {
		if l.Key == key && len(l.Holders) > 0 {
			return true
		}
	}
	return false
}
