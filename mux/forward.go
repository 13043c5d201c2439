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
// it: the session's reader writes each payload straight into dst, and
// what arrived before Forward was called is written by Forward itself,
// without waiting. A goroutine starts only when dst is full, writes what
// is queued, and ends once it has caught up. done is called once with the
// bytes written and a nil error after the peer's CloseWrite, or the error
// that ended the copy (a reset, a local Close or Reset, the session's end,
// a failed write to dst). When the end comes with nothing left to write,
// done runs on the session's reader, so it must not block: a half-close or
// close of dst, a send on a channel with room, and resetting st are fine.
// It is never called before Forward returns, nor from Close or Reset of st.
// Read deadlines do not apply; end the copy with Close or Reset. Do not
// call Read or WriteTo on st while a Forward runs. count, if not nil, has
// every byte added as dst takes it, so a long connection's traffic shows
// in metrics while it is still open.
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
	st.kickForward(kickOwner)
	return nil
}

// kicker says who kicks a Forward, which decides what the kick may do on
// the kicker's goroutine instead of starting one: each goroutine started
// is a thread wake-up on a 2-core machine, paid per connection.
type kicker uint8

const (
	// kickAny: any goroutine (a local Close or Reset, a Read's hand-off).
	// It may only start the drain goroutine.
	kickAny kicker = iota
	// kickReader: the session's reader, having seen the stream's end (the
	// peer's CLOSE or RESET, the session's end). With nothing left to
	// write it reports the end itself.
	kickReader
	// kickOwner: Forward's caller. It writes what is queued, without
	// waiting for the socket.
	kickOwner
)

// kickForward starts a drain goroutine unless one runs or the stream is
// idle with nothing to report, in which case the session's reader feeds
// the socket. It is called whenever data is queued or the stream's state
// changes (through wakeReader), once the session has ended, and by Forward.
func (st *Stream) kickForward(by kicker) {
	f := st.fwd.Load()
	if f == nil {
		return
	}
	st.mu.Lock()
	if f.running || st.fwd.Load() != f {
		st.mu.Unlock()
		return
	}
	var wrote int
	var inc int64
	if by == kickOwner && st.rBuffered > 0 {
		if wrote = st.writeQueued(); wrote > 0 {
			inc = st.consume(wrote)
		}
	}
	ended, err := st.forwardEnd()
	switch {
	case st.rBuffered == 0 && !ended:
		st.sinkIdle = true
		st.inflow.startWait(st.s.now())
		st.mu.Unlock()
	case st.rBuffered == 0 && by == kickReader:
		st.finishForward(f, err)
	default:
		f.running = true
		st.sinkIdle = false
		st.inflow.stopWait(st.s.now())
		st.mu.Unlock()
		go st.drainForward(f)
	}
	if wrote > 0 {
		st.credit(wrote, inc)
	}
}

// forwardEnd reports whether no more data can come, and the error a
// Forward ends with then (nil after the peer's CloseWrite). st.mu is held.
func (st *Stream) forwardEnd() (ended bool, err error) {
	err = st.readStateLocked()
	if err == nil {
		select {
		case <-st.s.done:
			err = st.s.Err()
		default:
			return false, nil
		}
	}
	if err == io.EOF {
		err = nil
	}
	return true, err
}

// writeQueued writes queued payloads into the sink, oldest first, as far
// as the socket takes them without waiting, and returns the bytes written.
// st.mu is held; the caller credits the bytes back.
func (st *Stream) writeQueued() (n int) {
	for st.rBuffered > 0 {
		bb := st.rq[st.rqHead]
		data := bb.B[st.rOff:]
		k := st.sinkWrite(data)
		n += k
		if k < len(data) {
			st.rOff += k
			st.rBuffered -= k
			st.s.buffered.Add(-int64(k))
			break
		}
		bb, _ = st.takeHead()
		putBuf(bb)
	}
	return n
}

// drainForward writes the queued payloads into the socket, waiting for it
// as a normal write does, until the queue is empty; then it hands the
// socket back to the session's reader, or reports the end.
func (st *Stream) drainForward(f *forwarder) {
	for {
		st.mu.Lock()
		if st.rBuffered == 0 {
			ended, err := st.forwardEnd()
			if !ended {
				f.running = false
				st.sinkIdle = true
				st.inflow.startWait(st.s.now())
				st.mu.Unlock()
				return
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

// kickForwarders lets every Forward, and every AfterReadable, learn that
// the session has ended. It runs on the session's reader, once that has
// stopped.
func (s *Session) kickForwarders() {
	s.streams.Range(func(_, v any) bool {
		v.(*Stream).kickForward(kickReader)
		v.(*Stream).fireReadable()
		return true
	})
}
