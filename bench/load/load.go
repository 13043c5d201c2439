// Package load is the harness's load generator: every function here is
// used unchanged for every system; only the address differs. It speaks the
// target service's protocol (package target).
package load

import (
	"net"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

const (
	pingSize    = 64
	dialTimeout = 5 * time.Second
	// ioTimeout bounds any single read or write wait so a stuck tunnel
	// fails the scenario instead of hanging the run.
	ioTimeout = 30 * time.Second
)

// NewHist is the histogram every latency figure goes through:
// microseconds, 1 µs to 60 s, 3 significant figures.
func NewHist() *hdrhistogram.Histogram {
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

// MBps converts bytes over a duration to MB/s (10^6 bytes per second).
func MBps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
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
