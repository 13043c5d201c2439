//go:build linux

package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkNotSentLowat measures what TCP_NOTSENT_LOWAT does for a small
// message sent while bulk data saturates the connection, the situation of a
// mux carrying one interactive stream beside a download.
//
// One writer goroutine sends 16 KiB bulk frames back to back, but a waiting
// small frame always goes first, as a fair mux scheduler would. The receiver
// reads at a fixed rate with a small fixed receive buffer, standing in for a
// slower link whose bandwidth-delay product is small. What the small frame
// then waits behind is the data already queued unsent in the sender's
// kernel buffer, which is what TCP_NOTSENT_LOWAT bounds. The metrics are the
// small frame's latency percentiles; b.N is the number of small frames.
func BenchmarkNotSentLowat(b *testing.B) {
	for _, lowat := range []int{0, 16 << 10, 128 << 10} {
		name := "off"
		if lowat > 0 {
			name = fmt.Sprintf("%dKiB", lowat>>10)
		}
		b.Run(name, func(b *testing.B) { benchLowat(b, lowat) })
	}
}

const (
	lowatRate      = 50 << 20 // receiver's bytes per second
	lowatBulkChunk = 16 << 10
	lowatGap       = 2 * time.Millisecond // between small frames
)

func benchLowat(b *testing.B, lowat int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recvOpts := DefaultTCPOptions()
	recvOpts.RecvBuffer = 64 << 10
	ln, err := Listen(ctx, "127.0.0.1:0", recvOpts, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	sendOpts := DefaultTCPOptions()
	sendOpts.NotSentLowat = lowat
	d, err := NewDialer(sendOpts, nil)
	if err != nil {
		b.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	sc, err := d.DialContext(ctx, ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	rc, ok := <-accepted
	if !ok {
		sc.Close()
		b.Fatal("accept failed")
	}

	base := time.Now()
	small := make(chan int64)
	lat := make(chan time.Duration, b.N)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // writer: small frames first, else bulk
		defer wg.Done()
		bulk := make([]byte, 5+lowatBulkChunk)
		bulk[0] = 0
		binary.BigEndian.PutUint32(bulk[1:], lowatBulkChunk)
		var msg [9]byte
		msg[0] = 1
		for {
			select {
			case ts := <-small:
				binary.BigEndian.PutUint64(msg[1:], uint64(ts))
				if _, err := sc.Write(msg[:]); err != nil {
					return
				}
				continue
			case <-ctx.Done():
				return
			default:
			}
			if _, err := sc.Write(bulk); err != nil {
				return
			}
		}
	}()
	go func() { // receiver at a fixed rate
		defer wg.Done()
		br := bufio.NewReaderSize(rc, 64<<10)
		start := time.Now()
		var total int64
		hdr := make([]byte, 8)
		for {
			t, err := br.ReadByte()
			if err != nil {
				return
			}
			if t == 1 {
				if _, err := io.ReadFull(br, hdr[:8]); err != nil {
					return
				}
				lat <- time.Since(base) - time.Duration(binary.BigEndian.Uint64(hdr))
				continue
			}
			if _, err := io.ReadFull(br, hdr[:4]); err != nil {
				return
			}
			n := int64(binary.BigEndian.Uint32(hdr))
			if _, err := br.Discard(int(n)); err != nil {
				return
			}
			total += n
			if due := start.Add(time.Duration(total * int64(time.Second) / lowatRate)); time.Until(due) > 0 {
				time.Sleep(time.Until(due))
			}
		}
	}()

	time.Sleep(200 * time.Millisecond) // let the queues fill
	b.ResetTimer()
	got := make([]time.Duration, 0, b.N)
	for range b.N {
		small <- int64(time.Since(base))
		got = append(got, <-lat)
		time.Sleep(lowatGap)
	}
	b.StopTimer()
	cancel()
	sc.Close()
	rc.Close()
	wg.Wait()

	slices.Sort(got)
	pct := func(p float64) float64 { return float64(got[int(p*float64(len(got)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkNotSentLowatThroughput measures what TCP_NOTSENT_LOWAT costs a
// bulk transfer over loopback: the writer is woken more often, in smaller
// steps.
func BenchmarkNotSentLowatThroughput(b *testing.B) {
	for _, lowat := range []int{0, 16 << 10, 128 << 10} {
		name := "off"
		if lowat > 0 {
			name = fmt.Sprintf("%dKiB", lowat>>10)
		}
		b.Run(name, func(b *testing.B) {
			ln, err := Listen(context.Background(), "127.0.0.1:0", DefaultTCPOptions(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			opts := DefaultTCPOptions()
			opts.NotSentLowat = lowat
			d, _ := NewDialer(opts, nil)
			done := make(chan int64, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					done <- 0
					return
				}
				n, _ := io.Copy(io.Discard, c)
				c.Close()
				done <- n
			}()
			c, err := d.DialContext(context.Background(), ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 64<<10)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			c.Close()
			if n := <-done; n != int64(b.N*len(buf)) {
				b.Fatalf("receiver got %d bytes, want %d", n, b.N*len(buf))
			}
		})
	}
}
