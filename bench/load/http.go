package load

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// HTTP runs conns keep-alive clients, each sending small GETs back to
// back; it returns requests per second and the latency histogram of the
// measured phase (after warmup).
func HTTP(ctx context.Context, addr, host string, conns int, warmup, d time.Duration, progress *atomic.Int64) (float64, *hdrhistogram.Histogram, int64, error) {
	req := []byte(fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-bench\r\n\r\n", host))
	measureFrom := time.Now().Add(warmup)
	end := measureFrom.Add(d)
	var okCount, failCount atomic.Int64
	var firstErr firstError
	hists := make([]*hdrhistogram.Histogram, conns)
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		hists[i] = NewHist()
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
	total := NewHist()
	for _, h := range hists {
		total.Merge(h)
	}
	if okCount.Load() == 0 {
		err := firstErr.get()
		return 0, nil, failCount.Load(), fmt.Errorf("no HTTP request succeeded through %s (Host %s): %v", addr, host, err)
	}
	return float64(okCount.Load()) / d.Seconds(), total, failCount.Load(), nil
}
