package load

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// HTTPTarget is where HTTP load goes.
type HTTPTarget struct {
	Addr string // where clients connect
	Host string // the Host header
	// Auth is "user:password" sent as basic auth with every request; ""
	// sends none.
	Auth string
}

// HTTPResult is what an HTTP run measured.
type HTTPResult struct {
	RPS  float64                 // requests per second in the measured phase
	Hist *hdrhistogram.Histogram // latency of the measured phase
	// Failed counts requests that failed (warm-up included); Done counts
	// every one answered 200, warm-up included, so a figure taken over
	// the whole call (CPU time) can be divided by it.
	Failed, Done int64
}

// HTTP runs conns keep-alive clients, each sending small GETs back to
// back; it returns requests per second and the latency histogram of the
// measured phase (after warmup).
func HTTP(ctx context.Context, tg HTTPTarget, conns int, warmup, d time.Duration, progress *atomic.Int64) (HTTPResult, error) {
	auth := ""
	if tg.Auth != "" {
		auth = "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(tg.Auth)) + "\r\n"
	}
	addr, host := tg.Addr, tg.Host
	req := []byte(fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-bench\r\n%s\r\n", host, auth))
	measureFrom := time.Now().Add(warmup)
	end := measureFrom.Add(d)
	var okCount, doneCount, failCount atomic.Int64
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
				doneCount.Add(1)
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
	res := HTTPResult{Failed: failCount.Load(), Done: doneCount.Load()}
	if okCount.Load() == 0 {
		err := firstErr.get()
		return res, fmt.Errorf("no HTTP request succeeded through %s (Host %s): %v", addr, host, err)
	}
	res.RPS, res.Hist = float64(okCount.Load())/d.Seconds(), total
	return res, nil
}
