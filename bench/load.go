package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// The load generator. Every function here is used unchanged for every
// system; only the address differs.

const (
	pingSize    = 64
	dialTimeout = 5 * time.Second
	// ioTimeout bounds any single read or write wait so a stuck tunnel
	// fails the scenario instead of hanging the run.
	ioTimeout = 30 * time.Second
)

// newLatencyHist is the histogram every latency figure goes through:
// microseconds, 1 µs to 60 s, 3 significant figures.
func newLatencyHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, 60_000_000, 3)
}

func recordLatency(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	h.RecordValue(us) // values above 60 s are dropped; none survive ioTimeout
}

func dial(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		return nil, err
	}
	c.(*net.TCPConn).SetNoDelay(true)
	return c, nil
}

// mbps converts bytes over a duration to MB/s (10^6 bytes per second).
func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

// transfer moves size bytes over one fresh connection in one direction and
// returns how long it took from the first byte sent to the last byte (or,
// for uploads, the target's acknowledgement) received.
func transfer(addr string, size int64, upload bool, progress *atomic.Int64) (time.Duration, error) {
	c, err := dial(addr)
	if err != nil {
		return 0, fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer c.Close()
	buf := make([]byte, ioChunk)
	start := time.Now()
	op := byte(opDownload)
	if upload {
		op = opUpload
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	if err := writeHeader(c, op, uint64(size)); err != nil {
		return 0, fmt.Errorf("send request header: %w", err)
	}
	if upload {
		left := size
		for left > 0 {
			n := int64(len(buf))
			if left < n {
				n = left
			}
			c.SetWriteDeadline(time.Now().Add(ioTimeout))
			if _, err := c.Write(buf[:n]); err != nil {
				return 0, fmt.Errorf("upload after %d of %d bytes: %w", size-left, size, err)
			}
			left -= n
			if progress != nil {
				progress.Add(n)
			}
		}
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		if _, err := io.ReadFull(c, buf[:1]); err != nil || buf[0] != uploadAck {
			return 0, fmt.Errorf("upload of %d bytes was not acknowledged by the target: %v", size, err)
		}
	} else {
		var got int64
		for got < size {
			c.SetReadDeadline(time.Now().Add(ioTimeout))
			n, err := c.Read(buf)
			got += int64(n)
			if progress != nil {
				progress.Add(int64(n))
			}
			if err != nil {
				if got >= size {
					break
				}
				return 0, fmt.Errorf("download stopped after %d of %d bytes: %w", got, size, err)
			}
		}
	}
	return time.Since(start), nil
}

// parallelTransfer runs conns transfers at once and returns the aggregate
// rate: all bytes over the wall time from the first start to the last end.
func parallelTransfer(addr string, conns int, size int64, upload bool, progress *atomic.Int64) (float64, error) {
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := transfer(addr, size, upload, progress); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return mbps(int64(conns)*size, el), nil
}

// echoConn opens a connection in echo mode.
func echoConn(addr string) (net.Conn, error) {
	c, err := dial(addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	if err := writeHeader(c, opEcho, 0); err != nil {
		c.Close()
		return nil, fmt.Errorf("send echo header: %w", err)
	}
	return c, nil
}

// pingPong sends one 64-byte message and waits for its echo.
func pingPong(c net.Conn, out, in []byte) error {
	if _, err := c.Write(out); err != nil {
		return fmt.Errorf("send ping: %w", err)
	}
	if _, err := io.ReadFull(c, in); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	return nil
}

// probe proves a tunnel is live: connect, one echo round trip.
func probe(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if err := writeHeader(c, opEcho, 0); err != nil {
		return err
	}
	out, in := make([]byte, pingSize), make([]byte, pingSize)
	out[0] = 'p'
	if err := pingPong(c, out, in); err != nil {
		return err
	}
	if in[0] != 'p' {
		return errors.New("echo came back altered")
	}
	return nil
}

// waitLive polls until a round trip through addr works; it returns how
// long after start that happened.
func waitLive(ctx context.Context, in *Instance, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if err := in.Alive(); err != nil {
			return 0, err
		}
		if last = probe(in.Addr, time.Second); last == nil {
			return time.Since(in.Started), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("no round trip through %s within %s (last error: %v); is the tunnel configured right? see the logs in the run directory", in.Addr, timeout, last)
}

// latency runs warmup+rounds 64-byte ping-pongs on one connection, stopping
// the measured part early at timeLimit. It returns the histogram of the
// measured rounds.
func latency(addr string, warmup, rounds int, timeLimit time.Duration, progress *atomic.Int64) (*hdrhistogram.Histogram, error) {
	c, err := echoConn(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out, in := make([]byte, pingSize), make([]byte, pingSize)
	h := newLatencyHist()
	var stop time.Time
	for i := 0; i < warmup+rounds; i++ {
		if i == warmup {
			stop = time.Now().Add(timeLimit)
		}
		c.SetDeadline(time.Now().Add(ioTimeout))
		t0 := time.Now()
		if err := pingPong(c, out, in); err != nil {
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

// loadedLatency measures ping-pong latency while bulk uploads saturate the
// same tunnel; it also returns the bulk rate achieved meanwhile.
func loadedLatency(addr string, bulk, warmup, rounds int, timeLimit time.Duration, progress *atomic.Int64) (*hdrhistogram.Histogram, float64, error) {
	var stop atomic.Bool
	var moved atomic.Int64
	var wg sync.WaitGroup
	bulkErr := make(chan error, bulk)
	var conns []net.Conn
	for i := 0; i < bulk; i++ {
		c, err := dial(addr)
		if err == nil {
			err = writeHeader(c, opSink, 0)
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
			buf := make([]byte, ioChunk)
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
	// Let the bulk streams fill the tunnel's buffers before measuring.
	time.Sleep(200 * time.Millisecond)
	m0, t0 := moved.Load(), time.Now()
	h, err := latency(addr, warmup, rounds, timeLimit, progress)
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
	return h, mbps(m1-m0, el), nil
}

// heldConns is a set of connections kept open through a tunnel.
type heldConns struct {
	conns    []net.Conn
	failed   int
	firstErr error
}

func (h *heldConns) Close() {
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

// holdConns opens n echo connections through addr, each proven live by a
// round trip, and keeps them open.
func holdConns(addr string, n, workers int, progress *atomic.Int64) *heldConns {
	h := &heldConns{}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, in := make([]byte, pingSize), make([]byte, pingSize)
			for next.Add(1) <= int64(n) {
				c, err := echoConn(addr)
				if err == nil {
					c.SetDeadline(time.Now().Add(10 * time.Second))
					err = pingPong(c, out, in)
					c.SetDeadline(time.Time{})
					if err != nil {
						c.Close()
					}
				}
				mu.Lock()
				if err != nil {
					h.failed++
					if h.firstErr == nil {
						h.firstErr = err
					}
				} else {
					h.conns = append(h.conns, c)
				}
				mu.Unlock()
				if progress != nil {
					progress.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return h
}

// connRate counts complete connections (connect, one round trip, close) per
// second over a fixed time with a few concurrent workers.
func connRate(addr string, workers int, d time.Duration, progress *atomic.Int64) (float64, int64, error) {
	var ok, failed atomic.Int64
	var firstErr firstError
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, headerLen+pingSize)
			msg[0] = opEcho
			in := make([]byte, pingSize)
			for time.Now().Before(deadline) {
				err := func() error {
					c, err := dial(addr)
					if err != nil {
						return err
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err := c.Write(msg); err != nil {
						return err
					}
					_, err = io.ReadFull(c, in)
					return err
				}()
				if err != nil {
					failed.Add(1)
					firstErr.set(err)
					// A refused or reset connection returns at once;
					// without a pause a broken tunnel would spin.
					time.Sleep(time.Millisecond)
					continue
				}
				ok.Add(1)
				if progress != nil {
					progress.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if ok.Load() == 0 {
		err := firstErr.get()
		return 0, failed.Load(), fmt.Errorf("no connection completed: %v", err)
	}
	return float64(ok.Load()) / el.Seconds(), failed.Load(), nil
}

// httpLoad runs conns keep-alive clients, each sending small GETs back to
// back; it returns requests per second and the latency histogram of the
// measured phase (after warmup).
func httpLoad(ctx context.Context, addr, host string, conns int, warmup, d time.Duration, progress *atomic.Int64) (float64, *hdrhistogram.Histogram, int64, error) {
	req := []byte(fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-bench\r\n\r\n", host))
	measureFrom := time.Now().Add(warmup)
	end := measureFrom.Add(d)
	var okCount, failCount atomic.Int64
	var firstErr firstError
	hists := make([]*hdrhistogram.Histogram, conns)
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		hists[i] = newLatencyHist()
		wg.Add(1)
		go func(h *hdrhistogram.Histogram) {
			defer wg.Done()
			var c net.Conn
			var br *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for time.Now().Before(end) && ctx.Err() == nil {
				if c == nil {
					var err error
					if c, err = dial(addr); err != nil {
						failCount.Add(1)
						firstErr.set(err)
						time.Sleep(10 * time.Millisecond)
						continue
					}
					br = bufio.NewReaderSize(c, 16<<10)
				}
				t0 := time.Now()
				c.SetDeadline(t0.Add(ioTimeout))
				err := func() error {
					if _, err := c.Write(req); err != nil {
						return err
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						return err
					}
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s (is Host %q routed?)", resp.Status, host)
					}
					if err == nil && resp.Close {
						c.Close()
						c = nil
					}
					return err
				}()
				if err != nil {
					failCount.Add(1)
					firstErr.set(err)
					if c != nil {
						c.Close()
						c = nil
					}
					time.Sleep(time.Millisecond)
					continue
				}
				if t0.After(measureFrom) {
					recordLatency(h, time.Since(t0))
					okCount.Add(1)
					if progress != nil {
						progress.Add(1)
					}
				}
			}
		}(hists[i])
	}
	wg.Wait()
	total := newLatencyHist()
	for _, h := range hists {
		total.Merge(h)
	}
	if okCount.Load() == 0 {
		err := firstErr.get()
		return 0, nil, failCount.Load(), fmt.Errorf("no HTTP request succeeded through %s (Host %s): %v", addr, host, err)
	}
	return float64(okCount.Load()) / d.Seconds(), total, failCount.Load(), nil
}

// firstError keeps the first error seen by concurrent workers.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Load runs one load by hand (sluice-bench load) and describes the result;
// it is how a tunnel is driven while a profiler watches it.
func Load(addr, mode string, mib, rounds int) (string, error) {
	switch mode {
	case "upload", "download":
		size := int64(mib) << 20
		d, err := transfer(addr, size, mode == "upload", nil)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s %d MiB in %v: %.0f MB/s", mode, mib, d.Round(time.Millisecond), mbps(size, d)), nil
	case "latency":
		h, err := latency(addr, 1000, rounds, time.Minute, nil)
		if err != nil {
			return "", err
		}
		return pctLine(h), nil
	case "http":
		// Host: the virtual host every tunnel routes (with the port, as a
		// browser would send it).
		_, port, _ := net.SplitHostPort(addr)
		rps, h, failed, err := httpLoad(context.Background(), addr, net.JoinHostPort(HTTPHostName, port), 50, 300*time.Millisecond, time.Duration(rounds)*time.Millisecond, nil)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%.0f req/s over 50 connections, P50 %d µs, P99 %d µs, %d failed", rps, h.ValueAtQuantile(50), h.ValueAtQuantile(99), failed), nil
	}
	return "", fmt.Errorf("load mode %q: want upload, download, latency or http", mode)
}
