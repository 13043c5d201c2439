package server

import (
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/testutil"
)

// TestUDPDropsAreCountedAndSummarised: datagrams the edge drops at a bound
// show in a counter by tunnel and reason, and in one log line per interval
// (not one per datagram).
func TestUDPDropsAreCountedAndSummarised(t *testing.T) {
	reg := prometheus.NewRegistry()
	logs := &testutil.SyncBuffer{}
	s := startServer(t, func(c *Config) {
		c.Metrics = reg
		c.UDPMaxFlows = 1
		c.Limits.WarnInterval = 50 * time.Millisecond
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	url := testutil.ServeMetrics(t, reg)
	_, m := udpAgent(t, s, control.Register{Ref: 1, Kind: control.KindUDP, Name: "dns"})
	a, ok := m.(control.Assigned)
	if !ok {
		t.Fatalf("want assigned, got %#v", m)
	}
	addr := "127.0.0.1:" + strconv.Itoa(a.Port)
	first, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.Write([]byte("takes the one flow"))
	// The first datagram opens the tunnel's only flow; wait for it, so
	// what the second source sends is over the flow limit.
	for deadline := time.Now().Add(10 * time.Second); s.UDPStats().Flows != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first source's flow never opened")
		}
	}
	second, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	const burst = 20
	for range burst {
		second.Write([]byte("over the flow limit"))
	}
	testutil.AwaitMetrics(t, url, testutil.MetricEqual(burst, "sluice_edge_udp_datagrams_dropped_total", "tunnel", "dns", "reason", "flow_limit"))
	if got := s.UDPStats().Dropped; got != burst {
		t.Fatalf("UDPStats().Dropped = %d, want %d", got, burst)
	}
	// A summary may fall in the middle of the burst: the lines add up.
	rx := regexp.MustCompile(`UDP datagrams dropped.* flow_limit=(\d+)`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		sum := 0
		lines := rx.FindAllStringSubmatch(logs.String(), -1)
		for _, m := range lines {
			n, _ := strconv.Atoi(m[1])
			sum += n
		}
		if sum == burst && len(lines) <= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the edge's log does not sum up the %d drops in a line or two:\n%s", burst, logs.String())
		}
	}
}
