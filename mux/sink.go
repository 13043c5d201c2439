package mux

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
)

// sink is a socket that Stream.WriteTo is copying the stream into. While
// that WriteTo waits for data, the session's reader writes an arriving
// payload into the socket itself, without blocking, and wakes WriteTo only
// when the socket does not take it all. On a 2-core VM every wake-up of a
// parked goroutine is a thread wake-up, the largest cost per message
// measured here; this removes one per message per hop.
type sink struct {
	rc      syscall.RawConn
	written int64         // bytes the session's reader wrote; guarded by st.mu
	count   *atomic.Int64 // a Forward's meter, if any
	// The write in progress, for writeFd: it is a method value made once,
	// since a closure over each call's arguments would be allocated anew
	// on every write.
	b       []byte
	n       int
	writeFn func(fd uintptr) bool
}

func newSink(w io.Writer) *sink {
	tc, ok := w.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	k := &sink{rc: rc}
	k.writeFn = k.writeFd
	return k
}

// tryWrite writes as much of b as the socket takes now, without waiting.
// A full socket is not an error: n is then short, and the caller queues
// the rest for WriteTo, which waits for the socket the usual way. Calls
// on one sink must not overlap (its user's lock keeps them apart).
func (k *sink) tryWrite(b []byte) (n int) {
	k.b, k.n = b, 0
	_ = k.rc.Write(k.writeFn)
	n = k.n
	k.b = nil
	if k.count != nil && n > 0 {
		k.count.Add(int64(n))
	}
	return n
}

func (k *sink) writeFd(fd uintptr) bool {
	for k.n < len(k.b) {
		m, err := syscall.Write(int(fd), k.b[k.n:])
		if m > 0 {
			k.n += m
		}
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || m <= 0 {
			break
		}
	}
	return true // never wait: a full socket is WriteTo's to wait for
}
