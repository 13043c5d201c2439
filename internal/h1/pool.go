// Package h1 is the HTTP/1.1 client of sluice's two proxies for their most
// common request: a GET or HEAD without a body. It writes the request and
// reads the response on the caller's goroutine, over a pool of kept-alive
// connections. net/http's Transport runs two goroutines per connection and
// hands every request and response between them; on a small GET those
// hand-offs cost about as much as the proxying itself. Every other request
// (a body, an upgrade, another method) goes to Fallback unchanged.
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Pool is an http.RoundTripper. Dial, Fallback and IdleTimeout are required;
// MaxIdle zero keeps no idle connections.
type Pool struct {
	// Dial opens a new connection to the one origin this pool serves, for
	// req (whose RemoteAddr a proxy may want to pass on).
	Dial func(ctx context.Context, req *http.Request) (net.Conn, error)
	// Fallback carries every request the fast path does not.
	Fallback interface {
		http.RoundTripper
		CloseIdleConnections()
	}
	// MaxIdle caps the connections kept for reuse.
	MaxIdle int
	// IdleTimeout is how long an unused connection is kept.
	IdleTimeout time.Duration

	mu     sync.Mutex
	idle   []*conn // most recently used last
	closed bool
}

type conn struct {
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	since time.Time // when it went idle
}

// errStale marks a reused connection that failed before a byte of the
// response arrived: the far end had closed it while idle.
var errStale = errors.New("kept-alive connection closed by the far end")

// fast reports whether req takes the fast path: no body to stream (so the
// request is written whole before the response is read) and no upgrade.
func fast(req *http.Request) bool {
	return (req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		(req.Body == nil || req.Body == http.NoBody) &&
		req.Header.Get("Upgrade") == "" && req.URL.Scheme == "http"
}

// RoundTrip implements http.RoundTripper.
func (p *Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	if !fast(req) {
		return p.Fallback.RoundTrip(req)
	}
	return p.Do(req, func(w *bufio.Writer) error { return req.Write(w) })
}

// Do sends a bodiless GET or HEAD whose request head writeHead writes (a
// proxy that builds it straight from the inbound request saves cloning
// it); req gives the method, the context and the response's Request.
func (p *Pool) Do(req *http.Request, writeHead func(*bufio.Writer) error) (*http.Response, error) {
	for {
		c, reused, err := p.get(req)
		if err != nil {
			return nil, err
		}
		resp, err := p.exchange(c, reused, req, writeHead)
		if err == nil {
			return resp, nil
		}
		c.nc.Close()
		// GET and HEAD are idempotent: one retry on a fresh connection when
		// a reused one turns out to be dead, as net/http does.
		if !reused || !errors.Is(err, errStale) || req.Context().Err() != nil {
			return nil, err
		}
	}
}

func (p *Pool) exchange(c *conn, reused bool, req *http.Request, writeHead func(*bufio.Writer) error) (*http.Response, error) {
	// A public client that goes away unblocks the read below.
	stop := context.AfterFunc(req.Context(), func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	if err := writeHead(c.bw); err != nil {
		stop()
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return nil, nothingRead(reused, err)
	}
	if _, err := c.br.Peek(1); err != nil {
		stop()
		if req.Context().Err() != nil {
			return nil, req.Context().Err()
		}
		return nil, nothingRead(reused, err)
	}
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			stop()
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			stop()
			return nil, errors.New("the origin switched protocols on a request that asked for no upgrade")
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			continue // informational: the final response follows
		}
		b := &body{rc: resp.Body, c: c, p: p, stop: stop, keep: !resp.Close}
		if resp.Body == http.NoBody {
			b.finish(true) // HEAD, 204, 304: the connection is free already
		}
		resp.Body = b
		return resp, nil
	}
}

// nothingRead describes a connection that failed before any of the
// response arrived: on a reused one, the far end had closed it while idle.
func nothingRead(reused bool, err error) error {
	if reused {
		return fmt.Errorf("%w: %w", errStale, err)
	}
	return fmt.Errorf("the connection closed before a response arrived: %w", err)
}

// body returns its connection to the pool once read to the end, and closes
// it when abandoned before that.
type body struct {
	rc   io.ReadCloser
	c    *conn
	p    *Pool
	stop func() bool
	keep bool
	done bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	}
	return n, err
}

func (b *body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *body) finish(eof bool) {
	b.done = true
	b.rc.Close()
	canceled := !b.stop()
	if eof && b.keep && !canceled && b.c.br.Buffered() == 0 {
		b.p.put(b.c)
		return
	}
	b.c.nc.Close()
}

func (p *Pool) get(req *http.Request) (*conn, bool, error) {
	now := time.Now()
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(c.since) < p.IdleTimeout {
			p.mu.Unlock()
			return c, true, nil
		}
		c.nc.Close()
	}
	p.mu.Unlock()
	nc, err := p.Dial(req.Context(), req)
	if err != nil {
		return nil, false, err
	}
	return &conn{nc: nc, br: bufio.NewReader(nc), bw: bufio.NewWriter(nc)}, false, nil
}

func (p *Pool) put(c *conn) {
	c.since = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.MaxIdle {
		p.mu.Unlock()
		c.nc.Close()
		return
	}
	var expired *conn
	if len(p.idle) > 0 && c.since.Sub(p.idle[0].since) >= p.IdleTimeout {
		// The least recently used connection is the one that expires;
		// dropping it here keeps idle ones from outliving the timeout
		// without a timer of their own.
		expired = p.idle[0]
		p.idle = append(p.idle[:0], p.idle[1:]...)
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
	if expired != nil {
		expired.nc.Close()
	}
}

// CloseIdleConnections closes every idle connection, and every connection
// handed back from now on: the origin is going away.
func (p *Pool) CloseIdleConnections() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
	p.Fallback.CloseIdleConnections()
}
