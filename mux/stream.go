package mux

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// Stream is one bidirectional byte stream of a Session. It implements
// net.Conn, with CloseWrite for a half-close and Reset for an abort.
type Stream struct {
	s  *Session
	id uint32
	// The flags sit beside id, where they fill what would be padding: a
	// Stream held open costs its size, and this keeps it within 256 bytes.
	finRecv    bool // the peer half-closed; guarded by mu
	readClosed bool // Close was called: incoming data is dropped; guarded by mu
	removed    bool // gone from the session's stream table; guarded by mu
	// sinkIdle says that WriteTo is waiting for data, so the session's
	// reader may write into its socket itself (see sink); guarded by mu.
	sinkIdle bool

	mu sync.Mutex
	// Receive side.
	rq        []*buffer  // received payloads, oldest first
	rqHead    int        // first unread payload in rq
	rOff      int        // read offset in rq[rqHead]
	rBuffered int        // unread bytes in rq
	inflow    recvWindow // the receive window and its auto-tuning
	readErr   error      // reads fail with it (reset)
	// Send side.
	outflow sendCredit // bytes the peer lets this side send
	wErr    error      // writes fail with it (CloseWrite, Close, reset)

	w atomic.Pointer[waiters] // made when a call first blocks or sets a deadline
	// sink is the socket a WriteTo copies into; guarded by mu.
	sink    *sink
	fwd     atomic.Pointer[forwarder] // set while a Forward runs
	writeMu sync.Mutex                // keeps one Write's bytes together on the wire
	queued  atomic.Int64              // bytes in sq

	sq sendQueue // frames waiting for the writer; guarded by s.sendMu
}

// newStream makes stream id with a receive window of window bytes and
// credit bytes of send credit.
func newStream(s *Session, id uint32, window, credit int64) *Stream {
	st := &Stream{
		s:       s,
		id:      id,
		inflow:  newRecvWindow(window, s.now()),
		outflow: sendCredit{n: credit},
	}
	st.sq.st = st
	return st
}

// waiters is what only a stream whose calls block, that has deadlines or
// that waits with AfterReadable needs. It is made on first use, so that a
// stream held open with no call waiting on it costs little memory.
type waiters struct {
	readCh  chan struct{} // signalled when data, FIN or reset arrives
	writeCh chan struct{} // signalled when credit or queue room appears
	rdl     deadline
	wdl     deadline
	ready   atomic.Pointer[func()] // set while an AfterReadable waits
}

// waiters returns the stream's waiters, making them if needed. A call must
// get them before its last look at the state it waits on, so that whoever
// changes that state afterwards finds them to signal.
func (st *Stream) waiters() *waiters {
	if w := st.w.Load(); w != nil {
		return w
	}
	w := &waiters{readCh: make(chan struct{}, 1), writeCh: make(chan struct{}, 1)}
	if st.w.CompareAndSwap(nil, w) {
		return w
	}
	return st.w.Load()
}

// wakeReader and wakeWriter signal a blocked Read or Write, if any.
func (st *Stream) wakeReader() { st.wakeReaderAs(kickAny) }

// wakeReaderAs is wakeReader for a caller that a Forward may ask more of
// (see kicker).
func (st *Stream) wakeReaderAs(by kicker) {
	w := st.w.Load()
	if w != nil {
		signal(w.readCh)
	}
	if st.fwd.Load() != nil {
		st.kickForward(by)
	}
	if w != nil && w.ready.Load() != nil {
		st.fireReadable()
	}
}

func (st *Stream) wakeWriter() {
	if w := st.w.Load(); w != nil {
		signal(w.writeCh)
	}
}

// deadlinePassed reports whether the read (or write) deadline has passed.
func (st *Stream) deadlinePassed(write bool) bool {
	w := st.w.Load()
	if w == nil {
		return false
	}
	if write {
		return w.wdl.passed()
	}
	return w.rdl.passed()
}

// ID is the stream's identifier on the wire.
func (st *Stream) ID() uint32 { return st.id }

// Session is the session the stream belongs to.
func (st *Stream) Session() *Session { return st.s }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (st *Stream) receiveFin() error {
	st.mu.Lock()
	if st.finRecv {
		st.mu.Unlock()
		return frame.SessionError(frame.CodeStreamClosed, "a second CLOSE on stream %d", st.id)
	}
	st.finRecv = true
	bothDone := st.wErr != nil
	st.mu.Unlock()
	st.wakeReaderAs(kickReader)
	if bothDone {
		st.remove()
	}
	return nil
}

func (st *Stream) receiveReset(code frame.Code) {
	err := &ResetError{Code: code}
	st.mu.Lock()
	// A RESET after the peer's CLOSE only says the peer stops reading:
	// what it sent before CLOSE stays readable.
	if !st.finRecv && st.readErr == nil {
		st.dropReceived()
		st.readErr = err
	}
	if st.wErr == nil || st.wErr == ErrWriteClosed {
		st.wErr = err
	}
	st.mu.Unlock()
	st.abortSend()
	st.remove()
	st.wakeReaderAs(kickReader)
	st.wakeWriter()
}

func (st *Stream) grant(inc int64) error {
	st.mu.Lock()
	ok := st.outflow.grant(inc, frame.MaxWindow)
	st.mu.Unlock()
	if !ok {
		return frame.SessionError(frame.CodeFlowControl, "the peer granted stream %d credit beyond %d", st.id, int64(frame.MaxWindow))
	}
	st.wakeWriter()
	return nil
}

// Write sends p. It blocks while the stream is out of credit (the peer's
// reader is behind) or its queue to the writer is full.
func (st *Stream) Write(p []byte) (int, error) {
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	if err := st.writeErr(); err != nil {
		return 0, err
	}
	// A passed deadline fails the call even with credit to spare, as with
	// net.TCPConn: nothing is sent.
	if st.deadlinePassed(true) {
		return 0, ErrTimeout
	}
	n := 0
	for n < len(p) {
		k, err := st.reserve(len(p) - n)
		if err != nil {
			return n, err
		}
		if ok, err := st.s.writeThrough(st, p[n:n+k]); ok {
			if err != nil {
				return n, err
			}
			n += k
			continue
		}
		// Queued, one frame per buffer, so that the writer interleaves
		// this stream's frames with other streams'.
		for end := n + k; n < end; {
			m := min(end-n, st.s.cfg.MaxFramePayload)
			bb := getBuf(m)
			copy(bb.B, p[n:n+m])
			if err := st.enqueue(bb); err != nil {
				putBuf(bb)
				if end-n > m {
					st.s.giveCredit(int64(end - n - m))
				}
				return n, err
			}
			n += m
		}
	}
	return n, nil
}

func (st *Stream) writeErr() error {
	st.mu.Lock()
	err := st.wErr
	st.mu.Unlock()
	if err == nil && isClosed(st.s.done) {
		err = st.s.Err()
	}
	return err
}

// reserve waits for stream credit, session credit and queue room, and
// takes up to want bytes of them (at most maxWriteFrames frames' worth).
func (st *Stream) reserve(want int) (int, error) {
	s := st.s
	want = min(want, maxWriteFrames*s.cfg.MaxFramePayload)
	var w *waiters
	for {
		st.mu.Lock()
		if err := st.wErr; err != nil {
			st.mu.Unlock()
			return 0, err
		}
		if st.outflow.n > 0 && st.queued.Load() < int64(s.cfg.MaxStreamQueue) {
			k := st.outflow.take(int64(want))
			st.mu.Unlock()
			got, err := s.takeCredit(k, st)
			if got < k {
				st.mu.Lock()
				st.outflow.give(k - got)
				st.mu.Unlock()
			}
			return int(got), err
		}
		st.mu.Unlock()
		if w == nil {
			w = st.waiters()
			continue // look again, now that a signal can reach us
		}
		select {
		case <-w.writeCh:
		case <-w.wdl.wait():
			return 0, ErrTimeout
		case <-s.done:
			return 0, s.Err()
		}
	}
}

// enqueue hands a payload to the session's writer.
func (st *Stream) enqueue(bb *buffer) error {
	s := st.s
	n := int64(len(bb.B))
	s.sendMu.Lock()
	if st.sq.finQueued {
		s.sendMu.Unlock()
		s.giveCredit(n)
		if err := st.writeErr(); err != nil {
			return err
		}
		return ErrWriteClosed
	}
	st.sq.push(bb)
	st.queued.Add(n)
	s.sched.Push(&st.sq)
	s.sendMu.Unlock()
	s.signalWriter()
	return nil
}

// dropSendQueue discards queued payloads and returns how many bytes they
// held. s.sendMu is held.
func (st *Stream) dropSendQueue() int64 {
	n := st.sq.drop()
	st.queued.Add(-n)
	return n
}

// abortSend drops what the writer has not sent yet. The session credit it
// held was never used on the wire, so it is given back.
func (st *Stream) abortSend() {
	s := st.s
	s.sendMu.Lock()
	n := st.dropSendQueue()
	s.sendMu.Unlock()
	if n > 0 {
		s.giveCredit(n)
	}
}

// CloseWrite half-closes the stream: the peer reads everything written so
// far and then io.EOF. Reading goes on.
func (st *Stream) CloseWrite() error {
	st.mu.Lock()
	if st.wErr != nil {
		err := st.wErr
		st.mu.Unlock()
		if err == ErrWriteClosed {
			return nil
		}
		return err
	}
	st.wErr = ErrWriteClosed
	bothDone := st.finRecv
	st.mu.Unlock()
	st.queueFin(false)
	st.wakeWriter()
	if bothDone {
		st.remove()
	}
	return nil
}

// queueFin puts the stream's CLOSE (and, with reset, a RESET right after
// it) behind its queued data. With none queued, every DATA frame of the
// stream is already in a batch, written before the next batch takes the
// control frames: the CLOSE joins them, and goes out on this goroutine if
// the connection is free (ctrlThrough), sparing the writer a wake-up per
// stream end.
func (st *Stream) queueFin(reset bool) {
	s := st.s
	s.sendMu.Lock()
	switch {
	case st.sq.finWritten:
		if reset {
			s.ctrl = frame.AppendReset(s.ctrl, st.id, frame.CodeCancel)
		}
	case !st.sq.hasData():
		st.sq.finQueued, st.sq.finWritten = true, true
		s.ctrl = frame.AppendClose(s.ctrl, st.id)
		if reset || st.sq.resetAfterFin {
			s.ctrl = frame.AppendReset(s.ctrl, st.id, frame.CodeCancel)
		}
	default:
		st.sq.finQueued = true
		st.sq.resetAfterFin = st.sq.resetAfterFin || reset
		s.sched.Push(&st.sq)
	}
	s.sendMu.Unlock()
	if !s.ctrlThrough() {
		s.signalWriter()
	}
}

// Close ends both directions: data already written is still delivered,
// followed by the stream's CLOSE; data still arriving is discarded, and if
// the peer has not finished sending it is told to stop with a RESET.
func (st *Stream) Close() error {
	st.mu.Lock()
	if st.readClosed {
		st.mu.Unlock()
		return nil
	}
	st.readClosed = true
	st.dropReceived()
	sendFin := st.wErr == nil
	if sendFin || st.wErr == ErrWriteClosed {
		st.wErr = ErrStreamClosed
	}
	stopPeer := !st.finRecv && st.readErr == nil
	reset := st.readErr != nil
	st.mu.Unlock()
	if w := st.w.Load(); w != nil {
		w.rdl.stop()
		w.wdl.stop()
	}
	switch {
	case reset:
		// Already reset by either side: nothing more to say.
	case sendFin || stopPeer:
		st.queueFin(stopPeer)
	}
	st.wakeReader()
	st.wakeWriter()
	st.remove()
	return nil
}

// Reset aborts the stream in both directions at once: queued data is
// dropped and the peer's calls fail with ErrStreamReset.
func (st *Stream) Reset() error {
	st.mu.Lock()
	if st.readErr != nil && st.wErr != nil && st.wErr != ErrWriteClosed {
		st.mu.Unlock()
		return nil
	}
	alreadyReset := st.readErr != nil
	st.readClosed = true
	st.dropReceived()
	st.readErr = ErrStreamClosed
	st.wErr = ErrStreamClosed
	st.mu.Unlock()
	if w := st.w.Load(); w != nil {
		w.rdl.stop()
		w.wdl.stop()
	}
	st.abortSend()
	if !alreadyReset {
		st.s.queueReset(st.id, frame.CodeCancel)
	}
	st.remove()
	st.wakeReader()
	st.wakeWriter()
	return nil
}

// remove takes the stream out of the session's table (once).
func (st *Stream) remove() {
	st.mu.Lock()
	if st.removed {
		st.mu.Unlock()
		return
	}
	st.removed = true
	st.mu.Unlock()
	st.s.streams.Delete(st.id)
	st.s.numStreams.Add(-1)
}

// LocalAddr is the local address of the session's connection.
func (st *Stream) LocalAddr() net.Addr { return st.s.conn.LocalAddr() }

// RemoteAddr is the peer's address on the session's connection.
func (st *Stream) RemoteAddr() net.Addr { return st.s.conn.RemoteAddr() }

// SetDeadline sets both the read and the write deadline.
func (st *Stream) SetDeadline(t time.Time) error {
	w := st.waiters()
	w.rdl.set(t)
	w.wdl.set(t)
	return nil
}

// SetReadDeadline makes Read fail with a timeout (net.Error) after t.
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.waiters().rdl.set(t)
	return nil
}

// SetWriteDeadline makes Write fail with a timeout (net.Error) after t.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.waiters().wdl.set(t)
	return nil
}
