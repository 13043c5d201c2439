// Package relay copies bytes both ways between two connections: a public
// connection and a mux stream on the edge, a mux stream and a local service
// connection on the agent. It is the whole data path of a TCP tunnel, so it
// does at most one copy per direction (socket to stream through a pooled
// buffer; stream to socket none), allocates nothing per chunk and, between
// a mux stream and a TCP socket, runs on the caller's goroutine alone: the
// stream's data is written into the socket by the session's reader
// (mux.Stream.Forward), with a goroutine only while the socket is full.
// Other pairs use two goroutines, the caller's and one more.
package relay

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/sluicehq/sluice/mux"
)

// BufferSize is the size of each direction's copy buffer: four mux DATA
// frames (64 KiB each by default), which a stream writes with one system
// call, so a busy socket costs one read and one write per 256 KiB. Only
// MaxLargeBuffers of them are lent at once (budget.go); beyond, a busy
// connection reads SmallBufferSize at a time.
const BufferSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, BufferSize); return &b }}

// Options tunes a relay.
type Options struct {
	// Meter, when set, counts the bytes of each direction as every chunk is
	// written, so a long connection's traffic shows in metrics while it is
	// still open. Several relays may share one Meter.
	Meter *Meter
}

// Meter counts the bytes relays moved: AToB from a to b, BToA back. Only
// atomic adds touch it on the data path.
type Meter struct {
	AToB, BToA atomic.Int64
}

// Result reports what a relay moved.
type Result struct {
	AToB, BToA int64
	// Err is the first error that was not a clean end of stream, nil when both
	// directions ended with EOF.
	Err error
}

// Relay copies a→b and b→a until both directions end, then closes both. A
// direction that reads EOF half-closes its destination (CloseWrite), so
// request/response protocols and upload-then-wait clients work. A direction
// that fails aborts both connections (Reset for a mux stream, an RST for TCP),
// so the far ends see an error rather than a clean but truncated stream.
func Relay(a, b net.Conn, opt Options) Result {
	var res Result
	var abortOnce sync.Once
	abort := func() {
		abortOnce.Do(func() {
			abortConn(a)
			abortConn(b)
		})
	}
	ab := func() error {
		n, err := copyHalf(b, a, opt.Meter.aToB())
		res.AToB = n
		if err != nil {
			abort()
		}
		return err
	}
	ba := func() error {
		n, err := copyHalf(a, b, opt.Meter.bToA())
		res.BToA = n
		if err != nil {
			abort()
		}
		return err
	}
	done := make(chan error, 1)
	var errAB, errBA error
	switch {
	case forward(b, a, &res.BToA, opt.Meter.bToA(), abort, done):
		errAB = ab()
		errBA = <-done
	case forward(a, b, &res.AToB, opt.Meter.aToB(), abort, done):
		errBA = ba()
		errAB = <-done
	default:
		go func() { done <- ab() }()
		errBA = ba()
		errAB = <-done
	}
	a.Close()
	b.Close()
	switch {
	case errAB != nil:
		res.Err = errAB
	case errBA != nil:
		res.Err = errBA
	}
	return res
}

// forward starts the src→dst direction as a mux.Stream.Forward when src is
// a stream and dst a TCP socket: the session's reader then writes into dst
// itself and no goroutine waits on an idle direction. count, if set, is the
// meter's counter of the direction. The direction's end is sent on done,
// with *n set. It reports false when it does not apply.
func forward(src, dst net.Conn, n *int64, count *atomic.Int64, abort func(), done chan<- error) bool {
	st, ok := src.(*mux.Stream)
	if !ok {
		return false
	}
	tc, ok := dst.(*net.TCPConn)
	if !ok {
		return false
	}
	// The callback may run on the session's reader, so nothing in it
	// blocks: a shutdown, an abort (a stream reset and a socket close),
	// and a send on done, which has room for this one.
	err := st.Forward(tc, count, func(m int64, err error) {
		*n = m
		if err == nil {
			err = closeWrite(dst)
		}
		if err != nil {
			abort()
		}
		done <- err
	})
	return err == nil
}

// copyHalf copies src to dst until src ends, then half-closes dst.
//
// When src is a socket, an idle direction holds no buffer: the read goes
// through the runtime poller directly, the buffer goes back to the pool
// whenever the socket turns out empty, and a fresh one is taken when it
// becomes readable. A thousand idle connections then pin no buffers, at the
// cost of nothing but a pool Get/Put per wait.
func copyHalf(dst, src net.Conn, count *atomic.Int64) (int64, error) {
	if st, ok := src.(*mux.Stream); ok {
		if count != nil {
			// Counting each payload as it is written costs the stream its
			// direct socket sink (see mux.Stream.WriteTo): the payloads
			// still go out without a copy, through dst.Write.
			n, err := st.WriteTo(countingWriter{dst, count})
			if err != nil {
				return n, err
			}
			return n, closeWrite(dst)
		}
		// The stream hands its received payloads to dst as they are: no
		// copy and no buffer of ours, idle or not.
		n, err := st.WriteTo(dst)
		if err != nil {
			return n, err
		}
		return n, closeWrite(dst)
	}
	sr := sockReaderOf(src)
	var bp *[]byte
	defer func() {
		if bp != nil {
			putBuf(bp)
		}
	}()
	var total int64
	for {
		var n int
		var rerr error
		if sr != nil {
			n, rerr = sr.read(&bp)
		} else {
			if bp == nil {
				bp = getBuf()
			}
			n, rerr = src.Read(*bp)
		}
		if n > 0 {
			w, werr := dst.Write((*bp)[:n])
			total += int64(w)
			if count != nil {
				count.Add(int64(w))
			}
			if werr != nil {
				return total, werr
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return total, closeWrite(dst)
			}
			return total, rerr
		}
	}
}

func (m *Meter) aToB() *atomic.Int64 {
	if m == nil {
		return nil
	}
	return &m.AToB
}

func (m *Meter) bToA() *atomic.Int64 {
	if m == nil {
		return nil
	}
	return &m.BToA
}

// countingWriter adds what each Write took to a meter's counter.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

type closeWriter interface{ CloseWrite() error }

func closeWrite(c net.Conn) error {
	if cw, ok := c.(closeWriter); ok {
		err := cw.CloseWrite()
		// The peer may already have closed its side entirely; that is not a
		// failure of this direction.
		if err != nil && (errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ENOTCONN)) {
			return nil
		}
		return err
	}
	return nil
}

type resetter interface{ Reset() error }

// abortConn ends c so that its peer sees a failure, not a clean close.
func abortConn(c net.Conn) {
	switch v := c.(type) {
	case resetter:
		v.Reset()
	case *net.TCPConn:
		v.SetLinger(0)
		v.Close()
	default:
		c.Close()
	}
}

// ProxyBufferSize is the size of the buffers BufferPool lends: one mux
// DATA frame. An HTTP body is copied by a ReverseProxy per request, and
// requests in flight at once each hold one, so they stay at a frame.
const ProxyBufferSize = 64 << 10

var proxyPool = sync.Pool{New: func() any { b := make([]byte, ProxyBufferSize); return &b }}

// BufferPool lends pooled buffers to httputil.ReverseProxy (it satisfies
// httputil.BufferPool), which otherwise allocates a fresh 32 KiB buffer for
// every response body it copies.
type BufferPool struct{}

// Get returns a ProxyBufferSize buffer from the pool.
func (BufferPool) Get() []byte { return *proxyPool.Get().(*[]byte) }

// Put returns a buffer obtained from Get.
func (BufferPool) Put(b []byte) {
	if cap(b) != ProxyBufferSize {
		return
	}
	b = b[:ProxyBufferSize]
	proxyPool.Put(&b)
}
