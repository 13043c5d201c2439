package mux

import (
	"io"

	"github.com/sluicehq/sluice/frame"
)

// The receive side of a stream: what the session's reader delivers
// (admit, deliver) and how the application takes it (Read, WriteTo),
// with the receive window credited back as it goes.

// Read reads data the peer sent. It returns io.EOF after the peer's
// CloseWrite once every byte before it has been read.
func (st *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, st.readState()
	}
	if err := st.awaitData(); err != nil {
		return 0, err
	}
	n := st.take(p)
	inc := st.consume(n)
	st.mu.Unlock()
	st.credit(n, inc)
	return n, nil
}

// WriteTo writes everything the peer sends to w, until the peer's
// CloseWrite (then it returns a nil error) or a failure. The payloads go to
// w straight from the buffers they were received into, with no copy, and
// no buffer is held while the stream is idle; io.Copy(w, stream) uses it.
func (st *Stream) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if k := newSink(w); k != nil {
		st.mu.Lock()
		st.sink = k
		st.mu.Unlock()
		defer func() {
			st.mu.Lock()
			st.sink, st.sinkIdle = nil, false
			st.mu.Unlock()
		}()
	}
	for {
		if err := st.awaitData(); err != nil {
			if err == io.EOF {
				err = nil
			}
			st.mu.Lock()
			if st.sink != nil {
				total += st.sink.written
				st.sink.written = 0
			}
			st.mu.Unlock()
			return total, err
		}
		bb, data := st.takeHead()
		st.mu.Unlock()
		n, err := w.Write(data)
		putBuf(bb)
		total += int64(n)
		// Credit goes back only once w has taken the bytes, so a slow w
		// holds the peer to the window like a slow Read does.
		st.mu.Lock()
		inc := st.consume(len(data))
		st.mu.Unlock()
		st.credit(len(data), inc)
		if err != nil {
			return total, err
		}
		if n < len(data) {
			return total, io.ErrShortWrite
		}
	}
}

// readState is the error a Read gets when nothing is buffered: nil while
// the stream can still receive. st.mu is not held.
func (st *Stream) readState() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.readStateLocked()
}

func (st *Stream) readStateLocked() error {
	switch {
	case st.readErr != nil:
		return st.readErr
	case st.finRecv:
		return io.EOF
	case st.readClosed:
		return ErrStreamClosed
	}
	return nil
}

// awaitData waits until data is buffered and returns nil with st.mu held,
// or returns why there will be none (io.EOF after the peer's CloseWrite)
// with st.mu not held.
func (st *Stream) awaitData() error {
	// A passed deadline fails the call even with data waiting, as with
	// net.TCPConn: callers set one in the past to stop reading now.
	if st.deadlinePassed(false) {
		return ErrTimeout
	}
	var w *waiters
	for {
		st.mu.Lock()
		st.sinkIdle = false
		if st.inflow.waiting() {
			st.inflow.stopWait(st.s.now())
		}
		if st.rBuffered > 0 {
			return nil
		}
		err := st.readStateLocked()
		if err == nil && w != nil {
			// From here until it wakes, this call is only waiting: the
			// session's reader may write into WriteTo's socket itself,
			// and auto-tuning counts the time as the reader keeping up.
			st.sinkIdle = st.sink != nil
			st.inflow.startWait(st.s.now())
		}
		st.mu.Unlock()
		if err != nil {
			// Pass the wake-up on: the state that ends this call ends
			// every call blocked beside it, and it took the only signal.
			st.wakeReader()
			return err
		}
		if w == nil {
			w = st.waiters()
			continue // look at the state once more, now that a signal can reach us
		}
		select {
		case <-w.readCh:
		case <-w.rdl.wait():
			st.mu.Lock()
			st.sinkIdle = false
			st.inflow.stopWait(st.s.now())
			st.mu.Unlock()
			return ErrTimeout
		case <-st.s.done:
			st.mu.Lock()
			st.sinkIdle = false
			st.inflow.stopWait(st.s.now())
			more := st.rBuffered > 0 || st.finRecv
			st.mu.Unlock()
			if !more {
				return st.s.Err()
			}
		}
	}
}

// credit returns n consumed bytes to the session window and sends the
// stream credit inc, if any. st.mu is not held.
func (st *Stream) credit(n int, inc int64) {
	st.s.consumed(n)
	if inc > 0 {
		st.s.queueStreamCredit(st.id, uint32(inc))
	}
}

// take copies buffered data into p. st.mu is held.
func (st *Stream) take(p []byte) (n int) {
	for n < len(p) && st.rqHead < len(st.rq) {
		bb := st.rq[st.rqHead]
		k := copy(p[n:], bb.B[st.rOff:])
		n += k
		st.rOff += k
		if st.rOff == len(bb.B) {
			putBuf(bb)
			st.rq[st.rqHead] = nil
			st.rqHead++
			st.rOff = 0
		}
	}
	if st.rqHead == len(st.rq) {
		st.rq, st.rqHead = st.rq[:0], 0
	}
	st.rBuffered -= n
	st.s.buffered.Add(-int64(n))
	return n
}

// consume accounts for n bytes the application has taken and works out the
// stream credit to send back (see recvWindow.consume). st.mu is held.
func (st *Stream) consume(n int) (inc int64) {
	now := st.s.now()
	return st.inflow.consume(int64(n), now, st.s.link(now), int64(st.rBuffered), st.finRecv, &st.s.lim)
}

// dropReceived discards unread data, giving its session credit back. st.mu is held.
func (st *Stream) dropReceived() {
	n := st.rBuffered
	for i := st.rqHead; i < len(st.rq); i++ {
		putBuf(st.rq[i])
		st.rq[i] = nil
	}
	st.rq, st.rqHead, st.rOff, st.rBuffered = nil, 0, 0, 0
	if n > 0 {
		st.s.buffered.Add(-int64(n))
		// consumed may queue a WINDOW_UPDATE: sendMu under st.mu, and
		// connMu only tried, as Session's lock order allows.
		st.s.consumed(n)
	}
}

// admit checks an incoming DATA frame of n bytes against the stream's
// state and credit. keep is false when the stream no longer reads.
func (st *Stream) admit(n int) (keep bool, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.finRecv {
		return false, frame.SessionError(frame.CodeStreamClosed, "DATA on stream %d after the peer's own CLOSE", st.id)
	}
	if !st.inflow.admit(int64(n)) {
		return false, frame.SessionError(frame.CodeFlowControl, "the peer sent %d bytes on stream %d beyond its window of %d", st.inflow.inFlight+int64(n)-st.inflow.window, st.id, st.inflow.window)
	}
	return !st.readClosed && st.readErr == nil, nil
}

// deliver queues a received payload for Read.
func (st *Stream) deliver(bb *buffer) {
	n := len(bb.B)
	st.mu.Lock()
	if st.readClosed || st.readErr != nil {
		st.mu.Unlock()
		putBuf(bb)
		st.s.consumed(n)
		return
	}
	if st.rqHead > 0 && len(st.rq) == cap(st.rq) {
		k := copy(st.rq, st.rq[st.rqHead:])
		clear(st.rq[k:])
		st.rq, st.rqHead = st.rq[:k], 0
	}
	// Arrivals are timed only where windows can grow: on loopback and
	// LANs a clock read per payload would buy nothing.
	rtt := st.s.tuningRTT()
	grows := st.s.windowsGrow(rtt)
	if first := st.inflow.first(int64(n)); first || grows {
		now := st.s.now()
		if first {
			st.inflow.arrived(now, rtt)
		}
		if grows {
			st.inflow.arrival(int64(n), now, rtt)
		}
	}
	off := 0
	if st.sinkIdle && st.rBuffered == 0 {
		// WriteTo is waiting and nothing is queued ahead of this payload:
		// hand it to the socket here, and wake WriteTo only for what the
		// socket does not take.
		off = st.sinkWrite(bb.B)
		if off == n {
			inc := st.consume(n)
			st.mu.Unlock()
			putBuf(bb)
			st.credit(n, inc)
			return
		}
	}
	var inc int64
	if off > 0 {
		inc = st.consume(off)
	}
	st.rq = append(st.rq, bb)
	if off > 0 {
		st.rOff = off // rq was empty: this payload is the one being read
	}
	st.rBuffered += n - off
	st.s.buffered.Add(int64(n - off))
	st.mu.Unlock()
	if off > 0 {
		st.credit(off, inc)
	}
	st.wakeReader()
}

// sinkWrite writes p into the stream's sink as far as the socket takes it
// without waiting, counts what it took, and returns that. st.mu is held.
func (st *Stream) sinkWrite(p []byte) int {
	n := st.sink.tryWrite(p)
	st.sink.written += int64(n)
	st.s.stats.sinkBytes.Add(uint64(n))
	return n
}

// takeHead removes the oldest received payload from the stream's queue,
// with what of it an earlier Read left (from rOff), and takes its bytes off
// the stream's and the session's buffered counts. The caller holds st.mu,
// the queue is not empty, and the caller returns bb with putBuf once done
// with data. The bytes' credit goes back separately, once they are delivered.
func (st *Stream) takeHead() (bb *buffer, data []byte) {
	bb, off := st.rq[st.rqHead], st.rOff
	st.rq[st.rqHead] = nil
	st.rqHead++
	st.rOff = 0
	if st.rqHead == len(st.rq) {
		st.rq, st.rqHead = st.rq[:0], 0
	}
	data = bb.B[off:]
	st.rBuffered -= len(data)
	st.s.buffered.Add(-int64(len(data)))
	return bb, data
}
