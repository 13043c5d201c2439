package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The load of the fleet process tests: HTTP requests and TCP connections
// spread over the edges in the load balancer's rotation, each recorded
// with the edge it went to and when.

// errRefused marks a connection the edge refused before anything was sent:
// a load balancer sends it to another edge.
type errRefused struct{ error }

func dialEdge(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, errRefused{err}
	}
	return c, nil
}

// httpOnce sends one request for the tunnel through edge e, on a fresh
// connection.
func (r *fleetRig) httpOnce(e *fleetEdge, ms int, n string) error {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(context.Context, string, string) (net.Conn, error) {
		return dialEdge(e.http)
	}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	resp, err := hc.Get(fmt.Sprintf("http://%s/?ms=%d&n=%s", r.host, ms, n))
	if err != nil {
		if re, ok := asRefused(err); ok {
			return re
		}
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "fleet ok "+n {
		return fmt.Errorf("%d %q", resp.StatusCode, b)
	}
	return nil
}

func asRefused(err error) (errRefused, bool) {
	var re errRefused
	ok := errors.As(err, &re)
	return re, ok
}

// tcpOnce opens a TCP connection to the tunnel's port on edge e and
// echoes rounds lines over it, 100 ms apart.
func (r *fleetRig) tcpOnce(e *fleetEdge, rounds int) error {
	c, err := dialEdge(net.JoinHostPort(e.tcpHost, r.tcpPort))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	br := bufio.NewReader(c)
	for i := range rounds {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		line := fmt.Sprintf("line %d\n", i)
		if _, err := io.WriteString(c, line); err != nil {
			return err
		}
		got, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		if got != line {
			return fmt.Errorf("round %d: echoed %q", i, got)
		}
	}
	return nil
}

// outcome is one request or connection of the load.
type outcome struct {
	kind       string // "http" or "tcp"
	edge       int
	start, end time.Time
	err        error
}

// load runs HTTP and TCP clients over the edges in rotation until stop,
// and returns every failure.
type load struct {
	mu       sync.Mutex
	failed   []outcome
	ok       atomic.Int64
	retried  atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
	lastEdge atomic.Int64
}

func (r *fleetRig) startLoad(httpWorkers, tcpWorkers int) *load {
	l := &load{stop: make(chan struct{})}
	n := atomic.Int64{}
	run := func(kind string, do func(e *fleetEdge) error) {
		defer l.wg.Done()
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			// The next edge in rotation that is up; a refused
			// connection goes to the one after it.
			var err error
			var e *fleetEdge
			start := time.Now()
			for try := 0; try < 6; try++ {
				e = r.nextUp(l)
				if e == nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				err = do(e)
				if _, refused := asRefused(err); !refused {
					break
				}
				l.retried.Add(1)
			}
			if e == nil {
				continue
			}
			if err != nil {
				l.mu.Lock()
				l.failed = append(l.failed, outcome{kind: kind, edge: e.i, start: start, end: time.Now(), err: err})
				l.mu.Unlock()
			} else {
				l.ok.Add(1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for range httpWorkers {
		l.wg.Add(1)
		go run("http", func(e *fleetEdge) error {
			return r.httpOnce(e, 50, strconv.FormatInt(n.Add(1), 10))
		})
	}
	for range tcpWorkers {
		l.wg.Add(1)
		go run("tcp", func(e *fleetEdge) error { return r.tcpOnce(e, 4) })
	}
	return l
}

func (r *fleetRig) nextUp(l *load) *fleetEdge {
	for range len(r.edges) {
		e := r.edges[int(l.lastEdge.Add(1))%len(r.edges)]
		if e.up.Load() {
			return e
		}
	}
	return nil
}

func (l *load) end() []outcome {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

func (l *load) failures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.failed)
}

func describe(out []outcome, t0 time.Time) string {
	var b strings.Builder
	for _, o := range out {
		fmt.Fprintf(&b, "\n  %s via edge %d, %v..%v after the event: %v", o.kind, o.edge,
			o.start.Sub(t0).Round(time.Millisecond), o.end.Sub(t0).Round(time.Millisecond), o.err)
	}
	return b.String()
}
