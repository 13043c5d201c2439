package agent

import (
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
)

// BenchmarkUDPRoundTrip measures request/response round trips of one UDP
// client through a UDP tunnel, beside the same exchange with the service
// directly, and reports P50/P99/P99.9 in microseconds. Edge, agent and
// service share this process; a lost datagram fails the run rather than
// being retried, so the figures are of the path, not of a retry timer.
func BenchmarkUDPRoundTrip(b *testing.B) {
	svc := startDNSService(b)
	e := startEdge(b, nil)
	as, _ := runAgent(b, e, nil, Tunnel{Kind: control.KindUDP, Local: svc.pc.LocalAddr().String()})
	targets := []struct {
		name string
		addr *net.UDPAddr
	}{{"direct", svc.pc.LocalAddr().(*net.UDPAddr)}, {"tunnel", udpAddrOf(b, as[0].URL)}}
	for _, size := range []int{64, 1400} {
		for _, tc := range targets {
			b.Run(tc.name+"-"+strconv.Itoa(size), func(b *testing.B) {
				c, err := net.DialUDP("udp", nil, tc.addr)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				req, reply := make([]byte, size), make([]byte, 65536)
				lat := make([]time.Duration, 0, b.N)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					if _, err := c.Write(req); err != nil {
						b.Fatal(err)
					}
					c.SetReadDeadline(t0.Add(5 * time.Second))
					if n, err := c.Read(reply); err != nil || n != size {
						b.Fatalf("round trip %d: %d bytes, %v", i, n, err)
					}
					lat = append(lat, time.Since(t0))
				}
				b.StopTimer()
				reportLatencies(b, lat)
			})
		}
	}
}

// BenchmarkUDPIdleFlowMemory opens b.N flows (one exchange each, then
// silence) through an in-process edge and agent and reports the heap and
// goroutine stacks they hold, per flow, edge and agent together.
func BenchmarkUDPIdleFlowMemory(b *testing.B) {
	svc := startDNSService(b)
	e := startEdge(b, nil)
	as, _ := runAgent(b, e, nil, Tunnel{Kind: control.KindUDP, Local: svc.pc.LocalAddr().String()})
	pub := udpAddrOf(b, as[0].URL)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	conns := make([]*net.UDPConn, 0, b.N)
	for i := 0; i < b.N; i++ {
		c, err := net.DialUDP("udp", nil, pub)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := exchange(c, []byte("q")); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if st := e.srv.UDPStats(); st.Flows != b.N {
		b.Fatalf("%d flows open, want %d", st.Flows, b.N)
	}
	held := float64(after.HeapAlloc+after.StackInuse) - float64(before.HeapAlloc+before.StackInuse)
	b.ReportMetric(held/float64(b.N), "B/flow")
	for _, c := range conns {
		c.Close()
	}
}
