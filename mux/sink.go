package mux

import (
	"io"
	"net"
	"sync/atomic"

	"github.com/sluicehq/sluice/internal/trywrite"
)

// sink is a socket that Stream.WriteTo is copying the stream into. While
// that WriteTo waits for data, the session's reader writes an arriving
// payload into the socket itself, without blocking, and wakes WriteTo only
// when the socket does not take it all. On a 2-core VM every wake-up of a
// parked goroutine is a thread wake-up, the largest cost per message
// measured here; this removes one per message per hop.
type sink struct {
	w       *trywrite.Writer
	written int64         // bytes the session's reader wrote; guarded by st.mu
	count   *atomic.Int64 // a Forward's meter, if any
}

func newSink(w io.Writer) *sink {
	tc, ok := w.(*net.TCPConn)
	if !ok {
		return nil
	}
	tw := trywrite.New(tc)
	if tw == nil {
		return nil
	}
	return &sink{w: tw}
}

// tryWrite writes as much of b as the socket takes now, without waiting.
// A full socket is not an error: n is then short, and the caller queues
// the rest for WriteTo, which waits for the socket the usual way. Calls
// on one sink must not overlap (its user's lock keeps them apart).
func (k *sink) tryWrite(b []byte) (n int) {
	n, _ = k.w.Write(b) // an error shows again at WriteTo's blocking write
	if k.count != nil && n > 0 {
		k.count.Add(int64(n))
	}
	return n
}
