package mux

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// The writer: batches of queued frames built under the session's wmu and
// written with one writev under connMu, by sendLoop or, for a lone DATA
// frame, by the writing goroutine itself (write-through).

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

// sendLoop writes whatever is queued: control frames, and DATA of streams
// whose Write found the connection busy. Batches are built and written
// under connMu, so frames leave in the order they were taken from the queue,
// whoever writes them. It runs only while the session has something to
// write: signalWriter starts it, and it ends once nothing more has come for
// writerLinger, so an idle session (most of an edge's agent sessions) holds
// no writer goroutine and no stack for one.
func (s *Session) sendLoop() {
	defer s.loops.Done()
	idle := time.NewTimer(writerLinger)
	defer idle.Stop()
	for {
		if !s.writeQueued() {
			s.retireWriter(true)
			return
		}
		idle.Reset(writerLinger)
		select {
		case <-s.wake:
			continue
		case <-s.done:
			s.retireWriter(true)
			return
		case <-idle.C:
		}
		if s.retireWriter(false) {
			return
		}
	}
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

// signalWriter makes sure the writer runs: it wakes the one that runs, or
// starts one unless the session has ended.
func (s *Session) signalWriter() {
	s.writerMu.Lock()
	defer s.writerMu.Unlock()
	switch {
	case s.writerOn:
		s.writerAgain = true
		select {
		case s.wake <- struct{}{}:
		default:
		}
	case !s.writerEnded:
		s.writerOn, s.writerAgain = true, false
		s.loops.Add(1)
		go s.sendLoop()
	}
}

// retireWriter ends the writer's run and reports true; if the session is
// over, the batch writer's buffers go back to their pool. A writer that
// found nothing to do for writerLinger (force false) goes on instead, and
// false is returned, when work was signalled meanwhile: the check and the
// end are one step under writerMu, so a signalWriter either sees the writer
// still on (and it goes on) or off (and starts a new one), and no queued
// frame waits for a writer that has left.
func (s *Session) retireWriter(force bool) bool {
	s.writerMu.Lock()
	if !force && s.writerAgain && !s.writerEnded {
		s.writerAgain = false
		s.writerMu.Unlock()
		return false
	}
	s.writerOn = false
	ended := s.writerEnded
	s.writerMu.Unlock()
	if ended {
		s.releaseWriter()
	}
	return true
}

// endWriter is called once as the session ends: no writer starts after it,
// and the buffers are released now if no writer runs, or by the writer as
// it ends.
func (s *Session) endWriter() {
	s.writerMu.Lock()
	s.writerEnded = true
	running := s.writerOn
	if !running {
		s.loops.Add(1)
	}
	s.writerMu.Unlock()
	if !running {
		// fail may run under connMu (a write-through that failed): release
		// from a goroutine that can wait for it.
		go func() {
			defer s.loops.Done()
			s.releaseWriter()
		}()
	}
}

func (s *Session) releaseWriter() {
	s.connMu.Lock()
	s.bw.releaseAll()
	s.connMu.Unlock()
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
// Each scheduled stream gives one frame per batch; a stream with more to
// send goes back behind the streams not reached yet.
func (w *batchWriter) build() bool {
	s := w.s
	w.reset()
	s.wmu.Lock()
	w.takeCtrl()
	budget := maxBatchBytes
	for turns := s.sched.Len(); turns > 0 && budget > 0 && w.frames < maxBatchFrames; turns-- {
		q := s.sched.Pop()
		st := q.st
		if q.hasData() {
			bb := q.pop()
			n := len(bb.B)
			st.queued.Add(-int64(n))
			start := len(w.hdrs)
			w.hdrs = frame.AppendData(w.hdrs, st.id, n)
			w.iov = append(w.iov, w.hdrs[start:], bb.B)
			w.release = append(w.release, bb)
			budget -= n
			w.frames++
			s.stats.bytesSent.Add(uint64(n))
			st.wakeWriter()
		}
		if q.finDue() {
			q.finWritten = true
			start := len(w.hdrs)
			w.hdrs = frame.AppendClose(w.hdrs, st.id)
			w.frames++
			if q.resetAfterFin {
				w.hdrs = frame.AppendReset(w.hdrs, st.id, frame.CodeCancel)
				w.frames++
			}
			w.iov = append(w.iov, w.hdrs[start:])
		}
		if q.hasData() {
			s.sched.Push(q)
		}
	}
	s.wmu.Unlock()
	return len(w.iov) > 0
}

// reset empties the batch. connMu is held.
func (w *batchWriter) reset() {
	w.iov = w.iov[:0]
	w.hdrs = w.hdrs[:0]
	w.frames = 0
}

// takeCtrl moves the queued control frames into the batch. s.wmu is held.
func (w *batchWriter) takeCtrl() {
	s := w.s
	if len(s.ctrl) > 0 {
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
	s.wmu.Lock()
	defer s.wmu.Unlock()
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
	return err
}

// flushOwed sends what a TryWrite left in the connection. connMu is held.
func (w *batchWriter) flushOwed() error {
	if !w.owed {
		return nil
	}
	w.owed = false
	if err := w.armDeadline(); err != nil {
		return err
	}
	return w.tw.Flush()
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
	s.wmu.Lock()
	defer s.wmu.Unlock()
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
	s.wmu.Lock()
	if s.sched.Len() > 0 || len(s.ctrl) == 0 {
		s.wmu.Unlock()
		return false
	}
	b := s.ctrl
	s.ctrl, w.spare = w.spare[:0], nil
	s.wmu.Unlock()
	if w.tw != nil {
		return w.tryWriteHeld(b)
	}
	n := w.raw.tryWrite(b)
	if n > 0 {
		s.stats.batches.Add(1)
		s.stats.framesSent.Add(1) // counted as one, as in a batch
	}
	if n == len(b) {
		w.spare = b[:0]
		return true
	}
	// The socket took part of it: the rest goes first in the writer's
	// next batch. connMu is still held, so nothing can come between.
	s.wmu.Lock()
	rest := append(b[:0:0], b[n:]...)
	s.ctrl = append(rest, s.ctrl...)
	s.wmu.Unlock()
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
		s.failWrite(err)
		return true // nothing more can be written; the session is ending
	}
	w.owed = held
	return !held
}
