package transport

import (
	"crypto/tls"
	"net"
	"sync"
)

// TLSConn is what Listen and a TLS Dialer hand out: a *tls.Conn whose Write
// sends the records of one call in as few system calls as it can.
//
// crypto/tls writes each record (16 KiB of data at most) with a system call
// of its own, so a 64 KiB mux batch costs five writes over TLS where it
// costs one writev in the clear, and every one of them can wake the peer's
// reader. TLSConn collects the records of a Write and sends them together,
// in chunks of up to batchLimit.
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

// maxRecordPayload is the most plaintext a TLS record carries.
const maxRecordPayload = 16 << 10

// batchLimit bounds what a batch holds before it is written: four full
// records, about one mux DATA frame.
const batchLimit = 4 * (16<<10 + 256)

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, batchLimit+16<<10+256); return &b }}

// recordBatcher is the socket under a TLSConn's tls.Conn. Between begin and
// end it collects what crypto/tls writes; at other times (handshake,
// alerts) it writes through. The batch buffer comes from a pool and goes
// back after each Write, so an idle connection holds none.
type recordBatcher struct {
	net.Conn
	mu  sync.Mutex // held while collecting and while writing a batch, so writes keep their order
	on  bool
	buf *[]byte
	err error // a failed batch write: the connection is unusable
}

func newTLSConn(raw net.Conn, cfg *tls.Config, client bool) *TLSConn {
	b := &recordBatcher{Conn: raw}
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
	if !b.on {
		return b.Conn.Write(p)
	}
	if b.buf == nil {
		b.buf = batchPool.Get().(*[]byte)
	}
	*b.buf = append(*b.buf, p...)
	if len(*b.buf) >= batchLimit {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// end writes what was collected since begin.
func (b *recordBatcher) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.on = false
	err := b.flushLocked()
	if b.buf != nil {
		*b.buf = (*b.buf)[:0]
		batchPool.Put(b.buf)
		b.buf = nil
	}
	return err
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
