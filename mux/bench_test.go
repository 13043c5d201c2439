package mux

import (
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Comparison benchmarks against hashicorp/yamux and xtaci/smux. Run them
// all, five times each, with allocation counts:
//
//	go test -run '^$' -bench . -benchmem -count 5 ./mux/
//
// and compare with scripts/bench-mux.sh, which prints medians and the
// ratios the targets are stated in. Each b.N round builds its own session
// pair over its own loopback TCP pair; setup is outside the timer.

const (
	benchChunk    = 64 << 10 // bulk and steady-path write size
	benchSmallMsg = 64       // request/response size
	benchStreams  = 100      // streams in the round-trip benchmark
	benchIdle     = 10000    // streams held in the idle-memory benchmark
	// benchOpenChunk streams are opened before the server accepts them,
	// fewer than any implementation's default accept backlog.
	benchOpenChunk = 128
	benchWarmup    = 1000 // untimed round trips before a latency run
)

// BenchmarkCompareBulk (a): one stream, b.N writes of 64 KiB, read and
// discarded by the peer; MB/s from b.SetBytes. The timer stops when the
// reader has every byte. 1 GiB is `-benchtime 16384x`.
func BenchmarkCompareBulk(b *testing.B) {
	benchForEachImpl(b, func(b *testing.B, impl benchImpl) {
		e := benchNewEnv(b, impl)
		cst, err := e.cli.open()
		if err != nil {
			b.Fatalf("bench: open stream failed: %v", err)
		}
		buf := make([]byte, benchChunk)
		// Warm-up: 4 MiB, so windows have grown and pools are filled.
		const warm = 64
		e.goRun(func() {
			for range warm {
				if _, err := cst.Write(buf); err != nil {
					return
				}
			}
		})
		sst, err := e.srv.accept()
		if err != nil {
			b.Fatalf("bench: accept stream failed: %v", err)
		}
		rbuf := make([]byte, benchChunk)
		if _, err := io.ReadFull(sst, make([]byte, warm*benchChunk)); err != nil {
			b.Fatalf("bench: warm-up read failed: %v", err)
		}
		b.SetBytes(benchChunk)
		b.ResetTimer()
		cpu := benchCPUNow(b)
		var werr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range b.N {
				if _, werr = cst.Write(buf); werr != nil {
					e.cli.close() // unblock the reader
					return
				}
			}
		}()
		want := int64(b.N) * benchChunk
		var got int64
		for got < want {
			n, err := sst.Read(rbuf)
			got += int64(n)
			if err != nil {
				b.StopTimer()
				e.stop()
				<-done
				b.Fatalf("bench: read failed after %d of %d bytes: %v (write error: %v)", got, want, err, werr)
			}
		}
		b.StopTimer()
		cpu.report(b)
		<-done
		if werr != nil {
			b.Fatalf("bench: write failed: %v", werr)
		}
	})
}

// BenchmarkCompareRoundTrips (b): 100 streams, each doing 64-byte
// request/response round trips against an echo, b.N round trips in all;
// reports round trips per second across the session.
func BenchmarkCompareRoundTrips(b *testing.B) {
	benchForEachImpl(b, func(b *testing.B, impl benchImpl) {
		e := benchNewEnv(b, impl)
		e.serveEcho()
		streams := make([]net.Conn, benchStreams)
		msg := make([]byte, benchSmallMsg)
		for i := range streams {
			st, err := e.cli.open()
			if err != nil {
				b.Fatalf("bench: open stream %d failed: %v", i, err)
			}
			if err := benchRoundTrip(st, msg, make([]byte, benchSmallMsg)); err != nil {
				b.Fatalf("bench: warm-up round trip on stream %d failed: %v", i, err)
			}
			streams[i] = st
		}
		var left atomic.Int64
		left.Store(int64(b.N))
		var wg sync.WaitGroup
		var firstErr atomic.Pointer[error]
		b.ResetTimer()
		cpu := benchCPUNow(b)
		for _, st := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := make([]byte, benchSmallMsg)
				reply := make([]byte, benchSmallMsg)
				for left.Add(-1) >= 0 {
					if err := benchRoundTrip(st, req, reply); err != nil {
						firstErr.CompareAndSwap(nil, &err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		cpu.report(b)
		if p := firstErr.Load(); p != nil {
			b.Fatalf("bench: round trip failed: %v", *p)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
	})
}

// BenchmarkCompareIdleMemory (c): heap and stack bytes per idle open
// stream with 10,000 held, both ends of the session counted. Each
// iteration builds a fresh session pair, takes a baseline after GC, opens
// and accepts 10,000 streams, and measures again after GC.
func BenchmarkCompareIdleMemory(b *testing.B) {
	benchForEachImpl(b, func(b *testing.B, impl benchImpl) {
		var heapSum, stackSum float64
		cli := make([]net.Conn, benchIdle)
		srv := make([]net.Conn, benchIdle)
		for range b.N {
			b.StopTimer()
			a, c := benchTCPPair(b)
			cs, ss, err := impl.pair(a, c)
			if err != nil {
				b.Fatalf("bench: starting a %s session pair failed: %v", impl.name, err)
			}
			heap0, stack0 := benchLiveBytes()
			b.StartTimer()
			for i := 0; i < benchIdle; i += benchOpenChunk {
				end := min(i+benchOpenChunk, benchIdle)
				for j := i; j < end; j++ {
					if cli[j], err = cs.open(); err != nil {
						b.Fatalf("bench: opening idle stream %d failed: %v", j, err)
					}
				}
				for j := i; j < end; j++ {
					if srv[j], err = ss.accept(); err != nil {
						b.Fatalf("bench: accepting idle stream %d failed: %v", j, err)
					}
				}
			}
			b.StopTimer()
			heap1, stack1 := benchLiveBytes()
			heapSum += float64(heap1-heap0) / benchIdle
			stackSum += float64(stack1-stack0) / benchIdle
			runtime.KeepAlive(cli)
			runtime.KeepAlive(srv)
			clear(cli)
			clear(srv)
			cs.close()
			ss.close()
			a.Close()
			c.Close()
			b.StartTimer()
		}
		b.ReportMetric((heapSum+stackSum)/float64(b.N), "B/stream")
		b.ReportMetric(heapSum/float64(b.N), "heapB/stream")
		b.ReportMetric(stackSum/float64(b.N), "stackB/stream")
	})
}

// benchLiveBytes returns the live heap and the goroutine stacks in use
// after two collections (the second empties sync.Pool victim caches, so
// pooled buffers count on neither side of a difference).
func benchLiveBytes() (heap, stack int64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), int64(ms.StackInuse)
}

// BenchmarkCompareLatency (d): 64-byte round trips one after another on
// one stream, after 1,000 untimed ones; reports P50, P99 and P99.9 in µs
// from an HdrHistogram of the b.N timed round trips.
func BenchmarkCompareLatency(b *testing.B) {
	benchForEachImpl(b, func(b *testing.B, impl benchImpl) {
		e := benchNewEnv(b, impl)
		e.serveEcho()
		st, err := e.cli.open()
		if err != nil {
			b.Fatalf("bench: open stream failed: %v", err)
		}
		h := benchLatency(b, st, b.N)
		benchReportLatency(b, h)
	})
}

// BenchmarkCompareLatencyUnderLoad: as BenchmarkCompareLatency, while a
// second stream on the same session pushes 64 KiB writes as fast as the
// peer reads them (the case where a shared send queue hurts small
// messages). It has no target; it shows fairness.
func BenchmarkCompareLatencyUnderLoad(b *testing.B) {
	benchForEachImpl(b, func(b *testing.B, impl benchImpl) {
		e := benchNewEnv(b, impl)
		e.serveEcho()
		// The echo server echoes the bulk stream too; the client drains
		// it, so bulk data flows both ways as in a tunnel under load.
		bulk, err := e.cli.open()
		if err != nil {
			b.Fatalf("bench: open bulk stream failed: %v", err)
		}
		e.goRun(func() {
			buf := make([]byte, benchChunk)
			for {
				if _, err := bulk.Write(buf); err != nil {
					return
				}
			}
		})
		e.goRun(func() {
			buf := make([]byte, benchChunk)
			for {
				if _, err := bulk.Read(buf); err != nil {
					return
				}
			}
		})
		st, err := e.cli.open()
		if err != nil {
			b.Fatalf("bench: open stream failed: %v", err)
		}
		h := benchLatency(b, st, b.N)
		benchReportLatency(b, h)
	})
}

// benchLatency times n round trips (after the warm-up) and resets the
// benchmark timer so that only they count.
func benchLatency(b *testing.B, st net.Conn, n int) *hdrhistogram.Histogram {
	msg := make([]byte, benchSmallMsg)
	reply := make([]byte, benchSmallMsg)
	for i := range benchWarmup {
		if err := benchRoundTrip(st, msg, reply); err != nil {
			b.Fatalf("bench: warm-up round trip %d failed: %v", i, err)
		}
	}
	// 1 ns to 10 s at 3 significant figures, as the harness records.
	h := hdrhistogram.New(1, int64(10*time.Second), 3)
	b.ResetTimer()
	cpu := benchCPUNow(b)
	for i := range n {
		t0 := time.Now()
		if err := benchRoundTrip(st, msg, reply); err != nil {
			b.Fatalf("bench: round trip %d failed: %v", i, err)
		}
		_ = h.RecordValue(int64(time.Since(t0)))
	}
	b.StopTimer()
	cpu.report(b)
	return h
}

func benchReportLatency(b *testing.B, h *hdrhistogram.Histogram) {
	b.ReportMetric(float64(h.ValueAtQuantile(50))/1e3, "p50-µs")
	b.ReportMetric(float64(h.ValueAtQuantile(99))/1e3, "p99-µs")
	b.ReportMetric(float64(h.ValueAtQuantile(99.9))/1e3, "p99.9-µs")
}

// BenchmarkCompareSteadyWriteRead (e): on an established stream, one
// op is a 64 KiB Write and the 64 KiB echo read back, so -benchmem's
// allocs/op counts everything both sessions allocate on the steady path
// (the echo's Read and Write included).
func BenchmarkCompareSteadyWriteRead(b *testing.B) {
	benchForEachImpl(b, func(b *testing.B, impl benchImpl) {
		e := benchNewEnv(b, impl)
		e.serveEcho()
		st, err := e.cli.open()
		if err != nil {
			b.Fatalf("bench: open stream failed: %v", err)
		}
		buf := make([]byte, benchChunk)
		reply := make([]byte, benchChunk)
		for i := range 64 {
			if err := benchRoundTrip(st, buf, reply); err != nil {
				b.Fatalf("bench: warm-up write/read %d failed: %v", i, err)
			}
		}
		b.SetBytes(benchChunk)
		b.ReportAllocs()
		b.ResetTimer()
		cpu := benchCPUNow(b)
		for i := range b.N {
			if err := benchRoundTrip(st, buf, reply); err != nil {
				b.Fatalf("bench: write/read %d failed: %v", i, err)
			}
		}
		b.StopTimer()
		cpu.report(b)
	})
}
