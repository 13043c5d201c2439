package mux

import (
	"context"
	"io"
	"sort"
	"sync"
	"testing"
	"time"
)

// BenchmarkWAN runs sluice alone over a userspace WAN link (tstLink) with
// a 50 ms round trip, with and without a 100 MB/s cap per direction:
//
//	go test -run '^$' -bench BenchmarkWAN -benchtime 1x ./mux/
//
// one-stream moves 128 MiB over one stream, read with WriteTo into a
// discarding writer; one-stream-into-socket the same, with WriteTo into a
// TCP socket, as the tunnel's relay reads (the session's reader then writes
// payloads into the socket itself); ten-streams 128 MiB over ten
// at once (agg-MB/s, and slowest/fastest stream throughput); rtt-under-bulk
// times 64-byte round trips on a stream of their own while two bulk
// streams keep the link full (p50/p99 in ms, against the 50 ms RTT). The
// bulk streams move 32 MiB before the timer starts, so windows have grown.
func BenchmarkWAN(b *testing.B) {
	for _, link := range []struct {
		name string
		rate float64
	}{{"50ms-100MBps", 100e6}, {"50ms-uncapped", 0}} {
		b.Run(link.name+"/one-stream", func(b *testing.B) { benchWANBulk(b, link.rate, 1, 'd') })
		b.Run(link.name+"/one-stream-into-socket", func(b *testing.B) { benchWANBulk(b, link.rate, 1, 's') })
		b.Run(link.name+"/ten-streams", func(b *testing.B) { benchWANBulk(b, link.rate, 10, 'd') })
		b.Run(link.name+"/rtt-under-bulk", func(b *testing.B) { benchWANLatency(b, link.rate) })
	}
}

const benchWANDelay = 25 * time.Millisecond

// benchWANPair is a session pair over the WAN link whose server side
// echoes streams that start with 'e', copies those that start with 's'
// into a loopback socket whose far end discards them, and discards the
// others.
func benchWANPair(b *testing.B, rate float64) (cli, srv *Session) {
	a, c := tstLink(b, benchWANDelay, rate)
	cli, srv = tstSessions(b, a, c, DefaultConfig(), DefaultConfig())
	tstServe(b, srv, func(st *Stream) {
		kind := make([]byte, 1)
		if _, err := io.ReadFull(st, kind); err != nil {
			return
		}
		switch kind[0] {
		case 'e':
			_, _ = io.Copy(st, st)
		case 's':
			dst, far := tcpPair(b)
			go func() { _, _ = io.Copy(io.Discard, far) }()
			_, _ = io.Copy(dst, st)
			_ = dst.Close()
		default:
			_, _ = io.Copy(io.Discard, st)
		}
		_ = st.Close()
	})
	return cli, srv
}

func benchWANBulk(b *testing.B, rate float64, streams int, kind byte) {
	cli, srv := benchWANPair(b, rate)
	const total, warm = 128 << 20, 32 << 20
	per := total / streams
	chunk := make([]byte, benchChunk)
	write := func(st *Stream, n int) error {
		for sent := 0; sent < n; sent += len(chunk) {
			if _, err := st.Write(chunk); err != nil {
				return err
			}
		}
		return nil
	}
	for b.Loop() {
		b.StopTimer()
		// Warm-up: each stream moves its share of 32 MiB, so windows
		// have grown, and the timer starts once the peer has read it.
		sts := make([]*Stream, streams)
		for i := range sts {
			st, err := cli.OpenStream(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			sts[i] = st
			if _, err := st.Write([]byte{kind}); err != nil {
				b.Fatal(err)
			}
		}
		base := srv.Stats().BytesReceived
		var wg sync.WaitGroup
		for _, st := range sts {
			wg.Add(1)
			go func() { defer wg.Done(); _ = write(st, warm/streams) }()
		}
		wg.Wait()
		for srv.Stats().BytesReceived-base < uint64(warm/streams*streams) {
			time.Sleep(time.Millisecond)
		}
		took := make([]time.Duration, streams)
		errs := make(chan error, streams)
		b.StartTimer()
		start := time.Now()
		for i, st := range sts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer st.Close()
				if err := write(st, per); err != nil {
					errs <- err
					return
				}
				// Done when the peer has read it all: it closes its end
				// on our CLOSE.
				if err := st.CloseWrite(); err != nil {
					errs <- err
					return
				}
				if _, err := io.Copy(io.Discard, st); err != nil {
					errs <- err
					return
				}
				took[i] = time.Since(start)
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		b.ReportMetric(float64(total)/elapsed.Seconds()/1e6, "agg-MB/s")
		if streams > 1 {
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(per)/took[len(took)-1].Seconds()/1e6, "slowest-MB/s")
			b.ReportMetric(float64(per)/took[0].Seconds()/1e6, "fastest-MB/s")
		}
	}
	b.ReportMetric(float64(srv.tuningRTT())/1e6, "rtt-ms")
}

func benchWANLatency(b *testing.B, rate float64) {
	cli, srv := benchWANPair(b, rate)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var moved [2]int64
	for i := range 2 {
		st, err := cli.OpenStream(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer st.Close()
			chunk := make([]byte, benchChunk)
			chunk[0] = 'd'
			for {
				select {
				case <-stop:
					return
				default:
				}
				n, err := st.Write(chunk)
				moved[i] += int64(n)
				if err != nil {
					return
				}
			}
		}()
	}
	defer func() { close(stop); cli.Close(); wg.Wait() }()
	// Let the bulk windows grow before timing.
	time.Sleep(2 * time.Second)
	echo, err := cli.OpenStream(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := echo.Write([]byte{'e'}); err != nil {
		b.Fatal(err)
	}
	msg, reply := make([]byte, benchSmallMsg), make([]byte, benchSmallMsg)
	var rtts []time.Duration
	const n = 100
	b.ResetTimer()
	for b.Loop() {
		rtts = rtts[:0]
		for range n {
			t0 := time.Now()
			if err := benchRoundTrip(echo, msg, reply); err != nil {
				b.Fatal(err)
			}
			rtts = append(rtts, time.Since(t0))
		}
	}
	b.StopTimer()
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	b.ReportMetric(float64(rtts[n/2-1])/1e6, "p50-ms")
	b.ReportMetric(float64(rtts[n*99/100-1])/1e6, "p99-ms")
	b.ReportMetric(float64(rtts[n-1])/1e6, "max-ms")
	b.ReportMetric(float64(srv.Stats().LargestStreamWindow)/(1<<20), "window-MiB")
}
