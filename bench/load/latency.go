package load

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/sluicehq/sluice/bench/target"
)

// EchoConn opens a connection in echo mode.
func EchoConn(addr string) (net.Conn, error) {
	c, err := dial(addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	if err := target.WriteHeader(c, target.OpEcho, 0); err != nil {
		c.Close()
		return nil, fmt.Errorf("send echo header: %w", err)
	}
	return c, nil
}

// PingPong sends one 64-byte message and waits for its echo.
func PingPong(c net.Conn, out, in []byte) error {
	if _, err := c.Write(out); err != nil {
		return fmt.Errorf("send ping: %w", err)
	}
	if _, err := io.ReadFull(c, in); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	return nil
}

// Probe proves a tunnel is live: connect, one echo round trip.
func Probe(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if err := target.WriteHeader(c, target.OpEcho, 0); err != nil {
		return err
	}
	out, in := make([]byte, pingSize), make([]byte, pingSize)
	out[0] = 'p'
	if err := PingPong(c, out, in); err != nil {
		return err
	}
	if in[0] != 'p' {
		return errors.New("echo came back altered")
	}
	return nil
}

// Latency runs warmup+rounds 64-byte ping-pongs on one connection, stopping
// the measured part early at timeLimit. It returns the histogram of the
// measured rounds.
func Latency(addr string, warmup, rounds int, timeLimit time.Duration, progress *atomic.Int64) (*hdrhistogram.Histogram, error) {
	c, err := EchoConn(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out, in := make([]byte, pingSize), make([]byte, pingSize)
	h := NewHist()
	var stop time.Time
	for i := 0; i < warmup+rounds; i++ {
		if i == warmup {
			stop = time.Now().Add(timeLimit)
		}
		c.SetDeadline(time.Now().Add(ioTimeout))
		t0 := time.Now()
		if err := PingPong(c, out, in); err != nil {
			return nil, fmt.Errorf("round %d: %w", i, err)
		}
		if i >= warmup {
			recordLatency(h, time.Since(t0))
			if progress != nil {
				progress.Add(1)
			}
			if time.Now().After(stop) {
				break
			}
		}
	}
	return h, nil
}

// Loaded measures ping-pong latency while bulk uploads saturate the
// same tunnel; it also returns the bulk rate achieved meanwhile.
func Loaded(addr string, bulk, warmup, rounds int, settle, timeLimit time.Duration, progress *atomic.Int64) (*hdrhistogram.Histogram, float64, error) {
	var stop atomic.Bool
	var moved atomic.Int64
	var wg sync.WaitGroup
	bulkErr := make(chan error, bulk)
	var conns []net.Conn
	for i := 0; i < bulk; i++ {
		c, err := dial(addr)
		if err == nil {
			err = target.WriteHeader(c, target.OpSink, 0)
		}
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, 0, fmt.Errorf("open bulk stream %d: %w", i, err)
		}
		conns = append(conns, c)
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			buf := make([]byte, target.Chunk)
			for !stop.Load() {
				c.SetWriteDeadline(time.Now().Add(ioTimeout))
				n, err := c.Write(buf)
				moved.Add(int64(n))
				if err != nil {
					if !stop.Load() {
						bulkErr <- fmt.Errorf("bulk upload: %w", err)
					}
					return
				}
			}
		}(c)
	}
	// Let the bulk streams fill the tunnel's buffers (and, across a WAN,
	// grow their windows) before measuring.
	time.Sleep(settle)
	m0, t0 := moved.Load(), time.Now()
	h, err := Latency(addr, warmup, rounds, timeLimit, progress)
	m1, el := moved.Load(), time.Since(t0)
	stop.Store(true)
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	close(bulkErr)
	if err != nil {
		return nil, 0, fmt.Errorf("ping-pong under load: %w", err)
	}
	if e := <-bulkErr; e != nil {
		return nil, 0, e
	}
	return h, MBps(m1-m0, el), nil
}

// PctLine describes a latency histogram in one line.
func PctLine(h *hdrhistogram.Histogram) string {
	return fmt.Sprintf("P50 %d  P99 %d  P99.9 %d  max %d µs (%d rounds)", h.ValueAtQuantile(50), h.ValueAtQuantile(99), h.ValueAtQuantile(99.9), h.Max(), h.TotalCount())
}
