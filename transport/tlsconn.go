package transport

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/sluicehq/sluice/internal/trywrite"
)

// TLSConn is what Listen and a TLS Dialer hand out: a *tls.Conn whose Write
// sends the records of one call in as few system calls as it can.
//
// crypto/tls writes each record (16 KiB of data at most) with a system call
// of its own, so a 64 KiB mux batch costs five writes over TLS where it
// costs one writev in the clear, and every one of them can wake the peer's
// reader. TLSConn collects the records of a Write and sends them together,
// in chunks of up to batchLimit.
//
// TryWrite and Flush let a caller that must not block (a session's reader
// answering with a window update) write without waiting for the socket.
type TLSConn struct {
	*tls.Conn
	out *recordBatcher
}

// Write encrypts p and writes the records.
func (c *TLSConn) Write(p []byte) (int, error) {
	if len(p) <= maxRecordPayload {
		// One record, one system call either way: no batch buffer to take.
		return c.Conn.Write(p)
	}
	c.out.begin()
	n, err := c.Conn.Write(p)
	if ferr := c.out.end(); ferr != nil && err == nil {
		return 0, ferr
	}
	return n, err
}

// WriteBuffers writes bufs as a Write of their concatenation would, without
// first copying them into one piece: a piece of half a record or more is
// sealed straight from the caller's memory, and only the small pieces
// between them (frame headers, control frames) are gathered into records of
// their own. A mux batch of a header and a 64 KiB payload then costs the
// five records a flattened one does, and no copy.
func (c *TLSConn) WriteBuffers(bufs [][]byte) (n int64, err error) {
	c.out.begin()
	var g *[]byte // the small pieces not yet written
	for _, b := range bufs {
		if len(b) < directPiece {
			if g == nil {
				g = gatherPool.Get().(*[]byte)
			} else if len(*g)+len(b) > maxRecordPayload {
				if err = c.writeGathered(g, &n); err != nil {
					break
				}
			}
			*g = append(*g, b...)
			continue
		}
		if g != nil {
			if err = c.writeGathered(g, &n); err != nil {
				break
			}
		}
		var m int
		m, err = c.Conn.Write(b)
		n += int64(m)
		if err != nil {
			break
		}
	}
	if g != nil {
		if err == nil {
			err = c.writeGathered(g, &n)
		}
		gatherPool.Put(g)
	}
	if ferr := c.out.end(); ferr != nil && err == nil {
		return 0, ferr
	}
	return n, err
}

// directPiece is the smallest piece WriteBuffers seals where it lies: below
// it, copying the piece costs less than the extra record would (a seal, 22
// bytes on the wire, a decryption at the peer).
const directPiece = maxRecordPayload / 2

var gatherPool = sync.Pool{New: func() any { b := make([]byte, 0, maxRecordPayload); return &b }}

func (c *TLSConn) writeGathered(g *[]byte, n *int64) error {
	if len(*g) == 0 {
		return nil
	}
	m, err := c.Conn.Write(*g)
	*n += int64(m)
	*g = (*g)[:0]
	return err
}

// TryWrite encrypts p and writes what the socket takes now, without waiting
// for it. The records it does not take are held, and go out first at the
// next Write or Flush; held reports that some are, and then the caller must
// see that a Flush (or a Write) follows, from a goroutine that may block.
// Calls must not overlap with Write or Flush (the caller's lock keeps them
// apart), as for Write.
func (c *TLSConn) TryWrite(p []byte) (held bool, err error) {
	c.out.begin()
	_, err = c.Conn.Write(p)
	held, ferr := c.out.endNow()
	if err == nil {
		err = ferr
	}
	return held, err
}

// Flush writes the records a TryWrite held, waiting for the socket as
// Write does.
func (c *TLSConn) Flush() error { return c.out.end() }

// maxRecordPayload is the most plaintext a TLS record carries.
const maxRecordPayload = 16 << 10

// batchLimit bounds what a batch holds before it is written: four full
// records, about one mux DATA frame.
const batchLimit = 4 * (16<<10 + 256)

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, batchLimit+16<<10+256); return &b }}

// recordBatcher is the socket under a TLSConn's tls.Conn. Between begin and
// end it collects what crypto/tls writes; at other times (handshake,
// alerts) it writes through, after any records a TryWrite held. The batch
// buffer comes from a pool and goes back once it is written, so an idle
// connection holds none.
type recordBatcher struct {
	net.Conn
	tw  *trywrite.Writer // the socket for writes that must not wait; nil if it has none
	mu  sync.Mutex       // held while collecting and while writing a batch, so writes keep their order
	on  bool
	buf *[]byte // collected records; between calls, those a TryWrite held
	err error   // a failed batch write: the connection is unusable
}

func newTLSConn(raw net.Conn, cfg *tls.Config, client bool) *TLSConn {
	b := &recordBatcher{Conn: raw}
	if sc, ok := raw.(syscall.Conn); ok {
		b.tw = trywrite.New(sc)
	}
	var tc *tls.Conn
	if client {
		tc = tls.Client(b, cfg)
	} else {
		tc = tls.Server(b, cfg)
	}
	return &TLSConn{Conn: tc, out: b}
}

func (b *recordBatcher) begin() {
	b.mu.Lock()
	b.on = true
	b.mu.Unlock()
}

func (b *recordBatcher) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if !b.on && b.buf == nil {
		return b.Conn.Write(p)
	}
	if b.buf == nil {
		b.buf = batchPool.Get().(*[]byte)
	}
	*b.buf = append(*b.buf, p...)
	if !b.on || len(*b.buf) >= batchLimit {
		// Outside a batch, p follows held records: write both now.
		err := b.flushLocked()
		if !b.on {
			b.releaseLocked()
		}
		if err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// end writes what was collected since begin, and any held records.
func (b *recordBatcher) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.on = false
	err := b.flushLocked()
	b.releaseLocked()
	return err
}

// endNow writes what was collected since begin as far as the socket takes
// it without waiting, and holds the rest; true if some is held.
func (b *recordBatcher) endNow() (held bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.on = false
	if b.err != nil {
		return false, b.err
	}
	if b.buf == nil {
		return false, nil
	}
	if b.tw != nil {
		// A write deadline that passed since the last blocking write
		// refuses the attempt: then everything is held, and the Flush
		// that follows (under a fresh deadline) reports any real error.
		n, err := b.tw.Write(*b.buf)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			b.err = err
			return false, err
		}
		rest := copy(*b.buf, (*b.buf)[n:])
		*b.buf = (*b.buf)[:rest]
	}
	if len(*b.buf) > 0 {
		return true, nil
	}
	b.releaseLocked()
	return false, nil
}

// releaseLocked gives the batch buffer back to the pool.
func (b *recordBatcher) releaseLocked() {
	if b.buf != nil {
		*b.buf = (*b.buf)[:0]
		batchPool.Put(b.buf)
		b.buf = nil
	}
}

func (b *recordBatcher) flushLocked() error {
	if b.err != nil {
		return b.err
	}
	if b.buf == nil || len(*b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(*b.buf)
	*b.buf = (*b.buf)[:0]
	if err != nil {
		b.err = err
	}
	return err
}
