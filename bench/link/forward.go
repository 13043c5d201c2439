package link

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// chunkSize is what one read of a rate-capped direction takes at most:
// small enough that a 64-byte message never waits behind much more than
// one chunk's serialization (0.65 ms at 100 MB/s). An uncapped direction
// reads up to bigChunk at once, so the link keeps up with a fast tunnel on
// two cores.
const (
	chunkSize = 64 << 10
	bigChunk  = 256 << 10
)

// maxEarly is how much earlier than due the writer may send a chunk rather
// than sleep again: Go's sleeps overshoot by up to about a millisecond, and
// a writer that slept before every chunk would fall behind a 100 MB/s cap.
// The cap itself is kept by the reader, so writing a little early bunches
// chunks without raising the rate.
const maxEarly = time.Millisecond

// relayBuf is the unshaped relay's copy buffer, the size io.Copy uses.
const relayBuf = 32 << 10

// sockBuf is the kernel receive buffer of a rate-capped link's sockets.
// The kernel's own buffers sit in front of the emulated queue, and left to
// auto-tune they grow to megabytes: a hidden, unbounded queue. 64 KiB keeps
// it below a millisecond at 100 MB/s.
const sockBuf = 64 << 10

var (
	chunkPool    = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}
	bigChunkPool = sync.Pool{New: func() any { b := make([]byte, bigChunk); return &b }}
)

// Link forwards every connection accepted on its listeners to a fixed
// address, shaped by its Shape. One Link is one path: connections through
// it share each direction's rate cap.
type Link struct {
	shape    Shape
	up, down *bottleneck

	mu     sync.Mutex
	lns    []net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New returns a link with the given shape; Forward starts serving.
func New(shape Shape) (*Link, error) {
	if err := shape.Validate(); err != nil {
		return nil, err
	}
	return &Link{shape: shape, up: newBottleneck(shape.Up), down: newBottleneck(shape.Down), conns: map[net.Conn]struct{}{}}, nil
}

// Listen opens a loopback listener suited to the link's shape (a small
// kernel receive buffer when shaped, inherited by accepted connections).
func (l *Link) Listen(addr string) (net.Listener, error) {
	lc := net.ListenConfig{}
	if l.capped() {
		lc.Control = smallRcvBuf
	}
	return lc.Listen(context.Background(), "tcp", addr)
}

// Forward accepts connections on ln and forwards each to addr until ln is
// closed or the link is.
func (l *Link) Forward(ln net.Listener, to string) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		ln.Close()
		return
	}
	l.lns = append(l.lns, ln)
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// Out of descriptors and the like: back off, do not spin.
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if !l.track(c) {
				return
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				defer l.untrack(c)
				l.serve(c, to)
			}()
		}
	}()
}

func (l *Link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *Link) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Close stops every listener and connection and waits for them.
func (l *Link) Close() error {
	l.mu.Lock()
	l.closed = true
	for _, ln := range l.lns {
		ln.Close()
	}
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}

// capped reports whether either direction has a rate cap.
func (l *Link) capped() bool { return l.up != nil || l.down != nil }

func (l *Link) serve(c net.Conn, to string) {
	defer c.Close()
	d := net.Dialer{Timeout: 5 * time.Second}
	if l.capped() {
		d.Control = smallRcvBuf
	}
	u, err := d.Dial("tcp", to)
	if err != nil {
		return
	}
	defer u.Close()
	if !l.track(u) {
		return
	}
	defer l.untrack(u)
	for _, x := range []net.Conn{c, u} {
		x.(*net.TCPConn).SetNoDelay(true)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.pipe(u, c, l.shape.Up, l.up)
	}()
	l.pipe(c, u, l.shape.Down, l.down)
	wg.Wait()
}

// pipe copies src to dst, shaped by d and b, then half-closes dst so the
// far side sees EOF. A failed write ends both connections.
func (l *Link) pipe(dst, src net.Conn, d Dir, b *bottleneck) {
	if d == (Dir{}) {
		copyPlain(dst, src)
		return
	}
	// Chunks travel from the reader to the writer through a channel: the
	// "wire". Its capacity bounds the bytes in flight (1,024 chunks, 64 MiB,
	// holds 250 ms at 250 MB/s and more than any capped preset needs).
	wire := make(chan chunk, 1024)
	pool := &chunkPool
	if b == nil {
		pool = &bigChunkPool
	}
	early := min(maxEarly, d.Delay/4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		write(dst, src, wire, pool, early)
	}()
	read(src, d, b, wire, pool)
	<-done
}

type chunk struct {
	buf *[]byte
	n   int
	due time.Time
	err error // io.EOF or the read error; the last chunk
}

func read(src net.Conn, d Dir, b *bottleneck, wire chan<- chunk, pool *sync.Pool) {
	defer close(wire)
	for {
		if b != nil {
			b.waitRoom()
		}
		bp := pool.Get().(*[]byte)
		n, err := src.Read(*bp)
		if n > 0 {
			now := time.Now()
			due := now
			if b != nil {
				due = b.send(now, n)
			}
			wire <- chunk{buf: bp, n: n, due: due.Add(d.Delay)}
		} else {
			pool.Put(bp)
		}
		if err != nil {
			wire <- chunk{err: err}
			return
		}
	}
}

func write(dst, src net.Conn, wire <-chan chunk, pool *sync.Pool, early time.Duration) {
	failed := false
	for c := range wire {
		if c.buf == nil {
			if !failed {
				if errors.Is(c.err, io.EOF) {
					closeWrite(dst)
				} else {
					dst.Close()
				}
			}
			continue
		}
		if !failed {
			if wait := time.Until(c.due); wait > early {
				time.Sleep(wait)
			}
			if _, err := dst.Write((*c.buf)[:c.n]); err != nil {
				// Unblock the reader: it ends on the closed source.
				failed = true
				src.Close()
			}
		}
		pool.Put(c.buf)
	}
}

func copyPlain(dst, src net.Conn) {
	buf := make([]byte, relayBuf)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				closeWrite(dst)
			} else {
				dst.Close()
			}
			return
		}
	}
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
		return
	}
	c.Close()
}

func smallRcvBuf(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = setRcvBuf(fd, sockBuf)
	})
	if err != nil {
		return err
	}
	return serr
}

// bottleneck is one direction's rate cap, shared by every connection of a
// link: a transmitter that sends queued bytes at the capped rate, with a
// bounded queue in front.
type bottleneck struct {
	bytesPerSec float64
	queue       time.Duration

	mu   sync.Mutex
	free time.Time // when the transmitter has sent everything queued so far
}

func newBottleneck(d Dir) *bottleneck {
	if d.RateMBps <= 0 {
		return nil
	}
	q := d.Queue
	if q == 0 {
		q = DefaultQueue
	}
	return &bottleneck{bytesPerSec: d.RateMBps * 1e6, queue: q}
}

// send queues n bytes read at now and returns when their last byte has
// left the transmitter (never before now).
//
// A transmitter that went idle keeps up to one queue's worth of sending
// time, as a token bucket keeps its burst: the link's reader is a goroutine
// that a busy machine may wake milliseconds late, and without the credit
// every late wake-up would leave the emulated line idle and cap the link
// below its rate. Over any stretch longer than the queue, the rate holds.
func (b *bottleneck) send(now time.Time, n int) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := b.free
	if earliest := now.Add(-b.queue); start.Before(earliest) {
		start = earliest
	}
	b.free = start.Add(time.Duration(float64(n) / b.bytesPerSec * float64(time.Second)))
	if b.free.Before(now) {
		return now
	}
	return b.free
}

// wait returns how long a reader must wait at now before the queue has
// room again: 0 while it holds at most its bound.
func (b *bottleneck) wait(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.free.After(now) {
		return 0 // idle (free may still be the zero time)
	}
	return max(0, b.free.Sub(now)-b.queue)
}

// waitRoom blocks while the queue holds more than its bound, the way a
// full router buffer stops a sender (here by not reading its socket).
func (b *bottleneck) waitRoom() {
	for {
		d := b.wait(time.Now())
		if d == 0 {
			return
		}
		time.Sleep(d)
	}
}
