package mux

import (
	"io"
	"net"
	"sync/atomic"
)

// forwarder is the state of a Forward: a stream copied into a TCP socket
// with no goroutine of its own while the socket keeps up. The session's
// reader writes each arriving payload into the socket (see sink); a
// goroutine runs only while the socket is full or to report the end, so a
// held connection costs one goroutine stack fewer on each side of a tunnel.
type forwarder struct {
	dst     *net.TCPConn
	count   *atomic.Int64
	done    func(n int64, err error)
	running bool  // a drain goroutine owns the stream's data; guarded by st.mu
	total   int64 // bytes written by drain goroutines; guarded by st.mu
}

// Forward copies everything the peer sends on st into dst, like WriteTo,
// and returns at once. While dst takes the data, no goroutine waits for
// it: the session's reader writes each payload straight into dst. A
// goroutine starts only when dst is full, writes what is queued, and ends
// once it has caught up. done is called once, on a goroutine other than
// the session's reader, with the bytes written and a nil error after the
// peer's CloseWrite, or the error that ended the copy (a reset, a local
// Close or Reset, the session's end, a failed write to dst). Read
// deadlines do not apply; end the copy with Close or Reset. Do not call
// Read or WriteTo on st while a Forward runs. count, if not nil, has every
// byte added as dst takes it, so a long connection's traffic shows in
// metrics while it is still open.
func (st *Stream) Forward(dst *net.TCPConn, count *atomic.Int64, done func(n int64, err error)) error {
	k := newSink(dst)
	if k == nil {
		return ErrStreamClosed
	}
	k.count = count
	f := &forwarder{dst: dst, count: count, done: done}
	st.mu.Lock()
	st.sink = k
	// Published before the session's end is looked at, so that an end
	// coming after this look finds the forwarder to kick.
	st.fwd.Store(f)
	st.mu.Unlock()
	st.kickForward()
	return nil
}

// kickForward starts a drain goroutine unless one runs or the stream is
// idle with nothing to report, in which case the session's reader feeds
// the socket. It is called whenever data is queued or the stream's state
// changes (through wakeReader) and once the session has ended.
func (st *Stream) kickForward() {
	f := st.fwd.Load()
	if f == nil {
		return
	}
	st.mu.Lock()
	if f.running || st.fwd.Load() != f {
		st.mu.Unlock()
		return
	}
	if st.rBuffered == 0 && !st.forwardEnded() {
		st.sinkIdle = true
		st.inflow.startWait(st.s.now())
		st.mu.Unlock()
		return
	}
	f.running = true
	st.sinkIdle = false
	st.inflow.stopWait(st.s.now())
	st.mu.Unlock()
	go st.drainForward(f)
}

// forwardEnded reports whether no more data can come. st.mu is held.
func (st *Stream) forwardEnded() bool {
	if st.readStateLocked() != nil {
		return true
	}
	select {
	case <-st.s.done:
		return true
	default:
		return false
	}
}

// drainForward writes the queued payloads into the socket, waiting for it
// as a normal write does, until the queue is empty; then it hands the
// socket back to the session's reader, or reports the end.
func (st *Stream) drainForward(f *forwarder) {
	for {
		st.mu.Lock()
		if st.rBuffered == 0 {
			err := st.readStateLocked()
			if err == nil {
				select {
				case <-st.s.done:
					err = st.s.Err()
				default:
				}
			}
			if err == nil {
				f.running = false
				st.sinkIdle = true
				st.inflow.startWait(st.s.now())
				st.mu.Unlock()
				return
			}
			if err == io.EOF {
				err = nil
			}
			st.finishForward(f, err)
			return
		}
		bb, data := st.takeHead()
		st.mu.Unlock()
		n, err := f.dst.Write(data)
		putBuf(bb)
		// Credit goes back only once the socket has taken the bytes, as
		// in WriteTo.
		if f.count != nil {
			f.count.Add(int64(n))
		}
		st.mu.Lock()
		f.total += int64(n)
		inc := st.consume(len(data))
		st.mu.Unlock()
		st.credit(len(data), inc)
		if err != nil {
			st.mu.Lock()
			st.finishForward(f, err)
			return
		}
	}
}

// finishForward ends f and calls its done. st.mu is held and released.
func (st *Stream) finishForward(f *forwarder, err error) {
	n := f.total + st.sink.written
	st.fwd.Store(nil)
	st.sink, st.sinkIdle = nil, false
	st.inflow.stopWait(st.s.now())
	st.mu.Unlock()
	f.done(n, err)
}

// kickForwarders lets every Forward learn that the session has ended.
func (s *Session) kickForwarders() {
	s.streams.Range(func(_, v any) bool {
		v.(*Stream).kickForward()
		return true
	})
}
