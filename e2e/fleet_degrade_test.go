package e2e

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/server"
)

// An edge whose store is lost while it runs (the other two edges of three
// stop, and their store nodes with them) keeps serving the tunnels it has,
// says so in its log, its metrics and its status, and answers a new
// registration with an error the agent retries on, not a refusal.
func TestFleetStoreLostKeepsServingWhatIsKnown(t *testing.T) {
	var log testutil.SyncBuffer
	edges, regs, stops := startFleetStoppable(t, 3, func(i int, c *server.Config) {
		if i == 0 {
			c.Logger = slog.New(slog.NewTextHandler(&log, nil))
		}
	})
	local := localHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("still here")) }))
	startAgent(t, edges[0], agent.Tunnel{Kind: control.KindHTTP, Name: "app", Local: local})
	c := viaEdge(t, edges[0].HTTPAddr().String())
	if body, err := getOK(c, "http://app.localhost/"); err != nil || body != "still here" {
		t.Fatalf("before: %q %v", body, err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		stops[1]()
	}()
	stops[2]()
	<-stopped

	deadline := time.Now().Add(20 * time.Second)
	for counter(t, regs[0], "sluice_edge_fleet_store_connected") != 0 || edges[0].Status().Fleet.Store.Connected {
		if time.Now().After(deadline) {
			t.Fatal("edge 0 did not report its store lost within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(log.String(), "serving what this edge knows") {
		t.Fatalf("edge 0's log does not say it serves what it knows:\n%s", log.String())
	}
	if body, err := getOK(c, "http://app.localhost/"); err != nil || body != "still here" {
		t.Fatalf("a known tunnel without the store: %q %v", body, err)
	}
	// A new name cannot be granted: the agent is told the store does not
	// answer, with a code it retries on (until its first-connect timeout),
	// not as if the name were taken.
	fresh := runFleetAgent(t, edges[0], token, agent.Tunnel{Kind: control.KindHTTP, Name: "fresh", Local: local})
	deadline = time.Now().Add(30 * time.Second) // each store operation waits out its timeout
	for !strings.Contains(log.String(), "no new name or port can be granted now") {
		select {
		case <-fresh.assigned:
			t.Fatal("a new name was granted without the store")
		case err := <-fresh.done:
			fresh.done <- err
			var ce *control.Error
			if !errors.As(err, &ce) || ce.Code != control.CodeInternal || !strings.Contains(ce.Message, "store does not answer") {
				t.Fatalf("the agent ended with %v, want a retryable error saying the store does not answer", err)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge 0's log does not say why the registration failed:\n%s", log.String())
		}
	}
}
