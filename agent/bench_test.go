package agent

import (
	"github.com/sluicehq/sluice/internal/testutil"

	"io"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
)

// tunnelAndDirect returns the public address of a TCP tunnel to an echo
// service, and the service's own address, both in this process.
func tunnelAndDirect(b *testing.B) (tunnel, direct string) {
	e := startEdge(b, nil)
	local := testutil.EchoServer(b)
	as, _ := runAgent(b, e, nil, Tunnel{Kind: control.KindTCP, Local: local})
	return tcpAddrOf(b, as[0].URL), local
}

// BenchmarkTCPBulk moves data one way through a TCP tunnel (and through a
// direct connection for comparison) in 64 KiB writes; the echo comes back
// and is drained. Edge, agent and service all share this process.
func BenchmarkTCPBulk(b *testing.B) {
	tun, direct := tunnelAndDirect(b)
	for _, tc := range []struct{ name, addr string }{{"direct", direct}, {"tunnel", tun}} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			drained := make(chan struct{})
			go func() { io.Copy(io.Discard, c); close(drained) }()
			buf := make([]byte, 64<<10)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			c.(*net.TCPConn).CloseWrite()
			<-drained
		})
	}
}

// BenchmarkTCPRoundTrip64 measures 64-byte request/response round trips on
// one connection and reports P50/P99/P99.9 in microseconds.
func BenchmarkTCPRoundTrip64(b *testing.B) {
	tun, direct := tunnelAndDirect(b)
	for _, tc := range []struct{ name, addr string }{{"direct", direct}, {"tunnel", tun}} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 64)
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			reportLatencies(b, lat)
		})
	}
}

// BenchmarkTCPNewConnection opens a connection through a TCP tunnel (and
// directly, for comparison), makes one 64-byte round trip and closes it,
// as the harness's connection-rate scenario does: its allocations per
// operation are those of one tunnelled connection, end to end, in both
// the edge and the agent (the close finishes in the background).
func BenchmarkTCPNewConnection(b *testing.B) {
	tun, direct := tunnelAndDirect(b)
	for _, tc := range []struct{ name, addr string }{{"direct", direct}, {"tunnel", tun}} {
		b.Run(tc.name, func(b *testing.B) {
			buf := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, err := net.Dial("tcp", tc.addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// reportLatencies reports the P50, P99 and P99.9 of the round trips in lat
// (sorted in place), in µs.
func reportLatencies(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(q(0.999), "p99.9-µs")
}
