package mux

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// The writer: batches of queued frames built under the session's sendMu and
// written with one writev under connMu. Three paths write them: sendLoop,
// and on the caller's own goroutine when the connection is free,
// writeThrough (a Write's DATA frames) and ctrlThrough (control frames);
// lastWrite writes the session's GOAWAY and closes the connection.

// maxWriteFrames is how many DATA frames one Stream.Write may send in one
// writev when it writes through: a relay that reads a socket in chunks of
// several frames then pays one system call per chunk, not per frame.
const maxWriteFrames = 4

// maxBatchBytes and maxBatchFrames bound one writev, so the writer goes
// back for fresh control frames (window updates, pongs) often enough.
const (
	maxBatchBytes  = 1 << 20
	maxBatchFrames = 512
)

// writerLinger is how long the writer waits for more work before it ends:
// while a session is busy its writer is woken for each batch, as a parked
// goroutine, rather than started anew; a moment after a session's last
// frame it is gone.
const writerLinger = 100 * time.Millisecond

// lastWriteWait bounds the session's last write (the GOAWAY that says why
// it ended): the connection is closed this long after the end at the
// latest, whether the GOAWAY went out or not.
const lastWriteWait = 100 * time.Millisecond

// sendLoop writes whatever is queued: control frames, and DATA of streams
// whose Write found the connection busy. Batches are built and written
// under connMu, so frames leave in the order they were taken from the queue,
// whoever writes them. It runs only while the session has something to
// write: signalWriter starts it, and it ends once nothing more has come for
// writerLinger, so an idle session (most of an edge's agent sessions) holds
// no writer goroutine and no stack for one. The writer that runs when the
// session ends does the session's last write as it stops.
func (s *Session) sendLoop() {
	defer s.loops.Done()
	idle := time.NewTimer(writerLinger)
	defer idle.Stop()
	for s.writeQueued() {
		idle.Reset(writerLinger)
		select {
		case <-s.wake:
			continue
		case <-s.done:
			s.retire(writerStopped)
			return
		case <-idle.C:
		}
		if s.retire(writerLingered) {
			return
		}
	}
	s.retire(writerStopped)
}

// retire takes the writer through e (it lingered, or it stops), does the
// session's last write if that falls to it, and reports whether the
// writer returns.
func (s *Session) retire(e writerEvent) bool {
	switch s.writerStep(e) {
	case writerGoOn:
		return false
	case writerLast:
		s.lastWrite()
	}
	return true
}

// writeQueued writes batches until nothing is left queued; false if the
// session ended or a write failed.
func (s *Session) writeQueued() bool {
	for {
		select {
		case <-s.done:
			return false
		default:
		}
		s.connMu.Lock()
		if !s.bw.build() {
			err := s.bw.flushOwed()
			s.connMu.Unlock()
			if err != nil {
				s.failWrite(err)
				return false
			}
			return true
		}
		err := s.bw.write()
		s.connMu.Unlock()
		if err != nil {
			s.failWrite(err)
			return false
		}
	}
}

// writerStep takes the writer's lifecycle through e (writerstate.go) and
// returns what the caller must do. A goroutine it asks for is counted in
// loops here, in the same step, so that Close cannot stop waiting before
// it is started.
func (s *Session) writerStep(e writerEvent) writerAction {
	s.writerMu.Lock()
	var act writerAction
	s.writer, act = s.writer.on(e)
	if act == writerStart || e == writerEnd && act == writerLast {
		s.loops.Add(1)
	}
	s.writerMu.Unlock()
	return act
}

// signalWriter makes sure the writer runs: it wakes the one that runs, or
// starts one unless the session has ended.
func (s *Session) signalWriter() {
	switch s.writerStep(writerSignal) {
	case writerStart:
		go s.sendLoop()
	case writerWake:
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// endWriter is called once as the session ends: no writer starts after it,
// and the last write is left to the writer that runs, or done on a
// goroutine of its own. fail may run under connMu (a write-through that
// failed), so it cannot do it itself.
func (s *Session) endWriter() {
	if s.writerStep(writerEnd) == writerLast {
		go func() {
			defer s.loops.Done()
			s.lastWrite()
		}()
	}
}

// lastWrite is the last thing a session writes: the GOAWAY fail queued,
// behind whatever the connection was in the middle of, unless a write has
// failed (the peer could not tell where the GOAWAY starts); then the
// connection is closed and every buffer still queued goes back to its pool.
func (s *Session) lastWrite() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	w := s.bw
	s.sendMu.Lock()
	var msg []byte
	if s.lastMsg != nil && !w.broken {
		if !s.prefaceSent {
			msg = frame.AppendPreface(msg)
		}
		// The rest of control frames a non-blocking write began.
		msg = append(msg, s.ctrl[:w.ctrlBegun]...)
		msg = append(msg, s.lastMsg...)
	}
	s.sendMu.Unlock()
	if msg != nil {
		s.prefaceSent = true
		// The deadline the last batch left may have passed long ago.
		_ = s.conn.SetWriteDeadline(time.Now().Add(lastWriteWait))
		_, _ = s.conn.Write(msg)
	}
	if s.lastWriteBy != nil {
		s.lastWriteBy.Stop()
	}
	_ = s.conn.Close()
	w.releaseAll()
}

func (s *Session) failWrite(err error) {
	if !errors.Is(err, net.ErrClosed) {
		err = fmt.Errorf("mux: writing to the connection failed: %w", err)
	}
	s.fail(err)
}

// writeThrough writes one DATA frame straight from the caller's buffer, on
// the caller's goroutine, when the connection is free and nothing else is
// waiting to go out. That spares the copy into a queue buffer and the
// hand-off to sendLoop: on a 2-core VM each hand-off to a parked goroutine
// is a thread wake-up, the largest cost per message measured here. ok is
// false when the frame must be queued instead; fairness between streams is
// untouched, since the queue is used whenever any stream has data waiting.
func (s *Session) writeThrough(st *Stream, p []byte) (ok bool, err error) {
	if !s.connMu.TryLock() {
		return false, nil
	}
	defer s.connMu.Unlock()
	if !s.bw.buildThrough(st, p) {
		return false, nil
	}
	if err := s.bw.write(); err != nil {
		s.failWrite(err)
		return true, s.Err()
	}
	return true, nil
}

// batchWriter builds and writes one batch at a time. Its buffers are
// reused from batch to batch, so the steady path allocates nothing.
type batchWriter struct {
	s        *Session
	iov      net.Buffers
	out      net.Buffers // iov consumed by WriteTo; iov keeps the backing array
	hdrs     []byte      // headers of this batch's DATA/CLOSE/RESET frames
	ctrl     []byte      // control frames taken from the queue
	spare    []byte      // the other control buffer, handed back to the queue
	release  []*buffer
	flat     []byte // for connections without writev: the batch in one piece
	vectored bool
	frames   int
	raw      *sink // the connection's socket, for ctrlThrough; nil if it is not TCP
	tw       tryWriter
	bufw     buffersWriter // for connections without writev that take pieces
	// owed: a TryWrite left bytes in the connection that only a Flush or
	// the next write sends.
	owed bool
	// ctrlBegun is how many bytes at the head of the session's ctrl finish
	// control frames a non-blocking write began (ctrlThrough): they go
	// before anything else, the session's last GOAWAY included.
	ctrlBegun int
	// broken: a write failed, so the peer cannot know where the next
	// frame would start; lastWrite writes nothing more.
	broken bool
}

// buffersWriter is a connection that writes a batch's pieces without their
// being copied into one first: transport.TLSConn, which seals them where
// they lie.
type buffersWriter interface {
	WriteBuffers(bufs [][]byte) (int64, error)
}

// tryWriter is a connection other than a plain socket that can take a write
// without waiting: transport.TLSConn, whose records, once sealed, must go
// out whole and in order, so it holds what the socket did not take instead
// of handing it back. ctrlThrough uses it as it uses a TCP socket.
type tryWriter interface {
	// TryWrite writes p without waiting; held reports that part of it
	// stays in the connection until Flush or the next Write.
	TryWrite(p []byte) (held bool, err error)
	Flush() error
}

func newBatchWriter(s *Session) *batchWriter {
	_, tcp := s.conn.(*net.TCPConn)
	_, unix := s.conn.(*net.UnixConn)
	// The header and control buffers start small and grow to what the
	// session's batches need: an idle session (most agent sessions on an
	// edge) then holds a few hundred bytes here, not the 16 KiB a full
	// batch of 512 frames would take.
	w := &batchWriter{
		s:        s,
		hdrs:     make([]byte, 0, 16*(2*frame.HeaderSize+4)),
		spare:    make([]byte, 0, 256),
		vectored: tcp || unix,
		raw:      newSink(s.conn),
	}
	if w.raw == nil {
		w.tw, _ = s.conn.(tryWriter)
	}
	if !w.vectored {
		w.bufw, _ = s.conn.(buffersWriter)
	}
	return w
}

// build takes queued frames into the batch; false if there were none.
// Every stream scheduled when it starts gives at most one turn (a DATA
// frame, its CLOSE, or both), in the scheduler's order.
func (w *batchWriter) build() bool {
	s := w.s
	w.reset()
	s.sendMu.Lock()
	w.takeCtrl()
	budget := maxBatchBytes
	for turns := s.sched.Len(); turns > 0 && budget > 0 && w.frames < maxBatchFrames; turns-- {
		f, _ := nextFrame(s.sched)
		budget -= w.appendFrame(f)
	}
	s.sendMu.Unlock()
	return len(w.iov) > 0
}

// appendFrame adds one turn of a stream to the batch and returns the DATA
// bytes it carries. s.sendMu is held.
func (w *batchWriter) appendFrame(f outFrame) int {
	id := f.st.id
	start := len(w.hdrs)
	n := 0
	if f.data != nil {
		n = len(f.data.B)
		w.hdrs = frame.AppendData(w.hdrs, id, n)
		w.iov = append(w.iov, w.hdrs[start:], f.data.B)
		w.release = append(w.release, f.data)
		w.frames++
		w.s.stats.bytesSent.Add(uint64(n))
		start = len(w.hdrs)
	}
	if f.fin {
		w.hdrs = frame.AppendClose(w.hdrs, id)
		w.frames++
		if f.reset {
			w.hdrs = frame.AppendReset(w.hdrs, id, frame.CodeCancel)
			w.frames++
		}
		w.iov = append(w.iov, w.hdrs[start:])
	}
	return n
}

// reset empties the batch. connMu is held.
func (w *batchWriter) reset() {
	w.iov = w.iov[:0]
	w.hdrs = w.hdrs[:0]
	w.frames = 0
}

// takeCtrl moves the queued control frames into the batch. s.sendMu is held.
func (w *batchWriter) takeCtrl() {
	s := w.s
	if len(s.ctrl) > 0 {
		w.ctrlBegun = 0
		w.ctrl, s.ctrl, w.spare = s.ctrl, w.spare[:0], nil
		w.iov = append(w.iov, w.ctrl)
		w.frames++ // counted as one; exact counts are not worth a parse
	}
}

// buildThrough makes a batch of the queued control frames and the DATA
// frames of p for st (p is at most maxWriteFrames frames' worth), if no stream has data queued (st included) and st is
// not half-closed. connMu is held.
func (w *batchWriter) buildThrough(st *Stream, p []byte) bool {
	s := w.s
	w.reset()
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.sched.Len() > 0 || st.sq.scheduled || st.sq.finQueued {
		return false
	}
	w.takeCtrl()
	s.stats.bytesSent.Add(uint64(len(p)))
	for len(p) > 0 {
		k := min(len(p), s.cfg.MaxFramePayload)
		start := len(w.hdrs)
		w.hdrs = frame.AppendData(w.hdrs, st.id, k)
		w.iov = append(w.iov, w.hdrs[start:], p[:k])
		w.frames++
		p = p[k:]
	}
	return true
}

// write writes the batch and releases its buffers. connMu is held.
func (w *batchWriter) write() error {
	s := w.s
	s.prefaceSent = true // every session's first batch starts with it
	if err := w.armDeadline(); err != nil {
		return err
	}
	var err error
	switch {
	case w.vectored:
		w.out = w.iov
		_, err = w.out.WriteTo(s.conn)
	case w.bufw != nil:
		_, err = w.bufw.WriteBuffers(w.iov)
	default:
		w.flat = w.flat[:0]
		for _, b := range w.iov {
			w.flat = append(w.flat, b...)
		}
		_, err = s.conn.Write(w.flat)
	}
	s.stats.batches.Add(1)
	s.stats.framesSent.Add(uint64(w.frames))
	w.releaseBuffers()
	w.owed = false // a write sends what a TryWrite held first
	w.broken = w.broken || err != nil
	return err
}

// flushOwed sends what a TryWrite left in the connection. connMu is held.
func (w *batchWriter) flushOwed() error {
	if !w.owed {
		return nil
	}
	w.owed = false
	err := w.armDeadline()
	if err == nil {
		err = w.tw.Flush()
	}
	w.broken = w.broken || err != nil
	return err
}

// armDeadline gives the blocking write about to start WriteTimeout to
// finish in. connMu is held.
func (w *batchWriter) armDeadline() error {
	s := w.s
	if s.cfg.WriteTimeout <= 0 {
		return nil
	}
	return s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
}

func (w *batchWriter) releaseBuffers() {
	for i, bb := range w.release {
		putBuf(bb)
		w.release[i] = nil
	}
	w.release = w.release[:0]
	for i := range w.iov {
		w.iov[i] = nil
	}
	if w.ctrl != nil {
		w.spare, w.ctrl = w.ctrl[:0], nil
	}
}

// releaseAll returns every pooled buffer still queued when the session ends.
func (w *batchWriter) releaseAll() {
	w.releaseBuffers()
	s := w.s
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	for q := s.sched.Pop(); q != nil; q = s.sched.Pop() {
		q.st.dropSendQueue()
	}
}

// ctrlThrough writes the queued control frames on the caller's goroutine,
// without blocking, when the connection is free and no stream has data
// queued; false if it did not write them all, and the writer must. A
// WINDOW_UPDATE is a few bytes: handing it to sendLoop costs a thread
// wake-up on a 2-core VM, writing it here one system call. Only a TCP
// connection can be written without blocking (a full socket must not hold
// up a Read), so others always go through the writer.
func (s *Session) ctrlThrough() bool {
	w := s.bw
	if (w.raw == nil && w.tw == nil) || !s.connMu.TryLock() {
		return false
	}
	defer s.connMu.Unlock()
	if !s.prefaceSent || w.spare == nil {
		return false
	}
	s.sendMu.Lock()
	if s.sched.Len() > 0 || len(s.ctrl) == 0 {
		s.sendMu.Unlock()
		return false
	}
	b := s.ctrl
	s.ctrl, w.spare = w.spare[:0], nil
	s.sendMu.Unlock()
	if w.tw != nil {
		w.ctrlBegun = 0 // the connection takes b whole, or holds it
		return w.tryWriteHeld(b)
	}
	n := w.raw.tryWrite(b)
	if n > 0 {
		s.stats.batches.Add(1)
		s.stats.framesSent.Add(1) // counted as one, as in a batch
	}
	if n == len(b) {
		w.spare = b[:0]
		w.ctrlBegun = 0
		return true
	}
	// The socket took part of it: the rest goes first in the writer's
	// next batch. connMu is still held, so nothing can come between.
	s.sendMu.Lock()
	rest := append(b[:0:0], b[n:]...)
	s.ctrl = append(rest, s.ctrl...)
	if n > 0 {
		w.ctrlBegun = len(rest)
	}
	s.sendMu.Unlock()
	w.spare = b[:0]
	return false
}

// tryWriteHeld writes the control frames b through a tryWriter; false if
// the connection holds part of them, for the writer to flush. connMu is
// held.
func (w *batchWriter) tryWriteHeld(b []byte) bool {
	s := w.s
	held, err := w.tw.TryWrite(b)
	w.spare = b[:0]
	s.stats.batches.Add(1)
	s.stats.framesSent.Add(1) // counted as one, as in a batch
	if err != nil {
		w.broken = true
		s.failWrite(err)
		return true // nothing more can be written; the session is ending
	}
	w.owed = held
	return !held
}
