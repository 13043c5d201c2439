package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// Listener is a tunnel served in-process: every public connection to the
// tunnel's URL arrives from Accept as a net.Conn whose RemoteAddr is the
// public client. No local port is opened. It reconnects to the edge by itself
// and keeps its URL across reconnects.
type Listener struct {
	ch      chan net.Conn
	done    chan struct{}
	once    sync.Once
	cancel  context.CancelFunc
	runDone chan struct{}
	runErr  error

	mu        sync.Mutex
	url       string
	ready     chan struct{}
	readyOnce sync.Once
}

// Listen connects to the edge, registers the single tunnel in cfg.Tunnels
// (its Local must be empty) and returns once the tunnel is live. ctx bounds
// only this setup; Close ends the tunnel.
func Listen(ctx context.Context, cfg Config) (*Listener, error) {
	if len(cfg.Tunnels) != 1 {
		return nil, fmt.Errorf("agent: Listen serves exactly one tunnel, got %d", len(cfg.Tunnels))
	}
	t := cfg.Tunnels[0]
	if t.Local != "" || t.Handler != nil {
		return nil, errors.New("agent: a Listen tunnel delivers connections to Accept: leave Local and Handler empty")
	}
	l := &Listener{
		ch:      make(chan net.Conn),
		done:    make(chan struct{}),
		runDone: make(chan struct{}),
		ready:   make(chan struct{}),
	}
	t.listener = l
	cfg.Tunnels = []Tunnel{t}
	a, err := New(cfg)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() {
		l.runErr = a.Run(rctx)
		close(l.runDone)
	}()
	select {
	case <-l.ready:
		return l, nil
	case <-l.runDone:
		cancel()
		if l.runErr == nil {
			l.runErr = errors.New("agent: stopped before the tunnel came up")
		}
		return nil, l.runErr
	case <-ctx.Done():
		cancel()
		<-l.runDone
		return nil, fmt.Errorf("agent: tunnel not up before the context ended: %w", ctx.Err())
	}
}

func (l *Listener) setURL(url string) {
	l.mu.Lock()
	l.url = url
	l.mu.Unlock()
	l.readyOnce.Do(func() { close(l.ready) })
}

// URL returns the tunnel's public URL (http://name.domain:port or
// tcp://host:port).
func (l *Listener) URL() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.url
}

func (l *Listener) deliver(c *publicConn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Reset()
	}
}

// Accept waits for the next public connection. After Close it returns
// net.ErrClosed; if the agent stopped on a fatal error (the edge refused the
// token or the name on a reconnect), it returns that error.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.runDone:
		if l.runErr != nil {
			return nil, l.runErr
		}
		return nil, net.ErrClosed
	}
}

// Close ends the tunnel: the edge stops routing to it and the session to the
// edge closes, which also ends the connections it carried.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.cancel()
	})
	<-l.runDone
	return nil
}

// Addr returns the tunnel's public URL as a net.Addr of network "sluice".
func (l *Listener) Addr() net.Addr { return tunnelAddr(l.URL()) }
