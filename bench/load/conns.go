package load

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/bench/target"
)

// Held is a set of connections kept open through a tunnel.
type Held struct {
	Conns    []net.Conn
	Failed   int
	FirstErr error
}

func (h *Held) Close() {
	for _, c := range h.Conns {
		c.Close()
	}
	h.Conns = nil
}

// Hold opens n echo connections through addr, each proven live by a
// round trip, and keeps them open.
func Hold(addr string, n, workers int, progress *atomic.Int64) *Held {
	h := &Held{}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, in := make([]byte, pingSize), make([]byte, pingSize)
			for next.Add(1) <= int64(n) {
				c, err := EchoConn(addr)
				if err == nil {
					c.SetDeadline(time.Now().Add(10 * time.Second))
					err = PingPong(c, out, in)
					c.SetDeadline(time.Time{})
					if err != nil {
						c.Close()
					}
				}
				mu.Lock()
				if err != nil {
					h.Failed++
					if h.FirstErr == nil {
						h.FirstErr = err
					}
				} else {
					h.Conns = append(h.Conns, c)
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

// ConnRate counts complete connections (connect, one round trip, close) per
// second over a fixed time with a few concurrent workers.
func ConnRate(addr string, workers int, d time.Duration, progress *atomic.Int64) (float64, int64, error) {
	var ok, failed atomic.Int64
	var firstErr firstError
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, target.HeaderLen+pingSize)
			msg[0] = target.OpEcho
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
