package fleet

import (
	"context"
	"io"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// newBenchFleet is newTestFleet for benchmarks, with production timings.
func newBenchFleet(b *testing.B) *testFleet {
	f := &testFleet{}
	for range 3 {
		f.addrs = append(f.addrs, freePair(b))
		f.dirs = append(f.dirs, b.TempDir())
	}
	f.edges = make([]*Store, 3)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			var err error
			f.edges[i], err = Open(context.Background(), Config{
				Name: "bench" + strconv.Itoa(i), Listen: f.addrs[i], Join: f.addrs, Secret: testSecret,
				StateDir: f.dirs[i], Logger: quietLogger(),
			})
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(f.close)
	return f
}

// BenchmarkFleetClaim is one claim at a time from one edge: the latency of
// a compare-and-set create through a three-node store.
func BenchmarkFleetClaim(b *testing.B) {
	f := newBenchFleet(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := f.edges[i%3].Claim(ctx, "host:serial"+strconv.Itoa(i)+".example.com", []byte(`{"owner":"x"}`), true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFleetHold is one compare-and-set update at a time (a second
// edge holding a lease, then letting go).
func BenchmarkFleetHold(b *testing.B) {
	f := newBenchFleet(b)
	ctx := context.Background()
	if _, err := f.edges[0].Claim(ctx, "host:held.example.com", []byte(`{}`), true); err != nil {
		b.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the other edges' copies catch up
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.edges[1].Hold(ctx, "host:held.example.com"); err != nil {
			b.Fatal(err)
		}
		if _, err := f.edges[1].Release(ctx, "host:held.example.com"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFleetClaimParallel is many agents registering at once on all
// three edges: claims per second across the fleet.
func BenchmarkFleetClaimParallel(b *testing.B) {
	f := newBenchFleet(b)
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(16)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := f.edges[i%3].Claim(ctx, "host:par"+strconv.FormatInt(i, 10)+".example.com", []byte(`{"owner":"x"}`), true); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "claims/s")
}

// BenchmarkLinkRoundTrip is a forwarded stream's cost: open a stream on a
// link (header and first bytes together), hear it accepted, get 64 bytes
// echoed, close.
func BenchmarkLinkRoundTrip(b *testing.B) {
	p := newLinkPair(b)
	defer p.close()
	ctx := context.Background()
	addr := p.b.Addr().String()
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	b.ResetTimer()
	for b.Loop() {
		c, err := p.a.Open(ctx, addr, Header{Kind: KindTCP, Key: "tcp:echo"}, msg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkFleetSetCount is one checked count write at a time from one
// edge (read, then compare-and-set): what an owner's tunnel costs a
// registration that no write in flight covers.
func BenchmarkFleetSetCount(b *testing.B) {
	f := newBenchFleet(b)
	ctx := context.Background()
	if _, err := f.edges[0].SetCount(ctx, "tunnels:bench", 1, 1<<30); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := f.edges[0].SetCount(ctx, "tunnels:bench", 2+i%2, 1<<30); err != nil {
			b.Fatal(err)
		}
	}
}
