package mux

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tstHoldingConn is a connection with TryWrite and Flush, as a TLS
// connection has: it holds what TryWrite is given, in order, until the next
// Write or Flush when hold is set (a socket that is always full), and
// writes it at once otherwise.
type tstHoldingConn struct {
	net.Conn
	hold    bool
	mu      sync.Mutex
	held    []byte
	tries   atomic.Int64
	flushes atomic.Int64
}

func (c *tstHoldingConn) TryWrite(p []byte) (bool, error) {
	c.tries.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = append(c.held, p...)
	if c.hold {
		return true, nil
	}
	return false, c.flushLocked()
}

func (c *tstHoldingConn) Flush() error {
	c.flushes.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

func (c *tstHoldingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *tstHoldingConn) flushLocked() error {
	if len(c.held) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	return err
}

// Over a connection with TryWrite, the receiving side's window updates go
// out through it; when the connection holds them (its socket full), the
// writer flushes them, so the sender gets its credit and a transfer many
// windows long completes with every byte in order.
func TestWindowUpdatesThroughTryWrite(t *testing.T) {
	for _, hold := range []bool{false, true} {
		name := "written"
		if hold {
			name = "held"
		}
		t.Run(name, func(t *testing.T) {
			a, b := tcpPair(t)
			hb := &tstHoldingConn{Conn: b, hold: hold}
			c, s := tstSessions(t, a, hb, DefaultConfig(), DefaultConfig())
			// Many times the initial stream window, so the transfer
			// needs credit back many times.
			data := bytes.Repeat(tstPool[:1<<20], 8)
			got := make(chan []byte, 1)
			tstServe(t, s, func(st *Stream) {
				_ = st.SetDeadline(time.Now().Add(tstTimeout))
				b, _ := io.ReadAll(st)
				got <- b
			})
			st, err := c.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_ = st.SetDeadline(time.Now().Add(tstTimeout))
			if _, err := st.Write(data); err != nil {
				t.Fatalf("writing %d bytes: %v (the receiver's credit never came back?)", len(data), err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if b := tstRecv(t, got, "the whole transfer"); !bytes.Equal(b, data) {
				t.Fatalf("the receiver read %d bytes, not the %d sent, or in another order", len(b), len(data))
			}
			if hb.tries.Load() == 0 {
				t.Fatal("no window update went out through TryWrite")
			}
			if hold && hb.flushes.Load() == 0 {
				t.Fatal("the writer never flushed what TryWrite held")
			}
		})
	}
}
