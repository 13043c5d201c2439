package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/server"
)

// TestMetricsCountGRPCOutcomesByStatus: a gRPC call that fails with a
// status in its trailers is HTTP 200 on the wire; the edge counts it by its
// grpc-status, so a failing call is not taken for a success.
func TestMetricsCountGRPCOutcomesByStatus(t *testing.T) {
	reg := prometheus.NewRegistry()
	cc, _ := grpcThroughTunnelWith(t, func(c *server.Config) { c.Metrics = reg })
	url := testutil.ServeMetrics(t, reg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := []byte(nil)
	for _, msg := range []string{"ping", "deny", "deny"} {
		in := []byte(msg)
		cc.Invoke(ctx, "/sluice.test.Echo/Echo", &in, &out)
	}
	testutil.AwaitMetrics(t, url, testutil.AllOf(
		testutil.MetricEqual(1, "sluice_edge_grpc_requests_total", "tunnel", "grpc.localhost", "code", "OK"),
		testutil.MetricEqual(2, "sluice_edge_grpc_requests_total", "tunnel", "grpc.localhost", "code", "PERMISSION_DENIED"),
	))
}

// TestMetricsOfAGoneTunnelEndWithItsLease: a tunnel that went offline keeps
// its request series while its lease holds (it may come back), and loses
// them once the lease is gone, so series do not pile up.
func TestMetricsOfAGoneTunnelEndWithItsLease(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := startEdge(t, func(c *server.Config) { c.Metrics = reg; c.ReclaimGrace = 1500 * time.Millisecond })
	url := testutil.ServeMetrics(t, reg)
	app := localHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	a, err := agent.New(agent.Config{Server: srv.Addr().String(), Token: token,
		Tunnels: []agent.Tunnel{{Kind: control.KindHTTP, Name: "gone", Local: app}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	hc := viaEdge(t, srv.HTTPAddr().String())
	get := func() error {
		resp, err := hc.Get(fmt.Sprintf("http://gone.localhost:%d/", srv.HTTPAddr().(*net.TCPAddr).Port))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 500 {
			return fmt.Errorf("status %d, want the app's 500", resp.StatusCode)
		}
		return nil
	}
	for deadline := time.Now().Add(10 * time.Second); get() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the tunnel never answered: %v", get())
		}
	}
	testutil.AwaitMetrics(t, url, func(s testutil.Scrape) error {
		if _, ok := s.Value("sluice_edge_http_requests_total", "tunnel", "gone.localhost", "class", "5xx"); !ok {
			return fmt.Errorf("no 5xx series for the live tunnel")
		}
		return nil
	})
	cancel()
	<-done
	// Offline but leased: the series stay.
	sc := testutil.ScrapeMetrics(t, url)
	if _, ok := sc.Value("sluice_edge_http_requests_total", "tunnel", "gone.localhost", "class", "5xx"); !ok {
		t.Fatal("the series went with the agent, before its lease ended")
	}
	testutil.AwaitMetrics(t, url, func(s testutil.Scrape) error {
		if _, ok := s.Value("sluice_edge_http_requests_total", "tunnel", "gone.localhost"); ok {
			return fmt.Errorf("the gone tunnel's series are still exported after its lease ended")
		}
		return nil
	})
}
