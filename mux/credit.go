package mux

import (
	"github.com/sluicehq/sluice/frame"
)

// Credit between the session and its peer: the glue between the rules in
// flow.go and the frames that carry them.

// consumed returns n bytes of session window once the application has read
// (or the session has discarded) them, crediting the peer when the rule in
// sessionRecv says so.
func (s *Session) consumed(n int) {
	if n == 0 {
		return
	}
	if s.recv.consumed(int64(n)) {
		s.flushSessionCredit()
	}
}

// flushSessionCredit sends the peer the session credit for everything
// consumed so far.
func (s *Session) flushSessionCredit() {
	if got := s.recv.take(); got > 0 {
		s.queueWindowUpdate(0, uint32(got))
	}
}

// Session credit is shared by every stream, and when bulk streams use it
// all up, the next stream's OPEN and header (a few hundred bytes) would
// wait among them for a grant: a public connection then waited seconds to
// be opened while thousands of others moved data. Writes of more than
// smallWrite bytes leave the last creditReserve bytes of session credit to
// small ones, so a new stream's header or a keystroke never queues behind
// bulk transfers for credit.
const (
	smallWrite    = 4 << 10
	creditReserve = 64 << 10
)

// creditFloor is the session credit a write of want bytes must leave to
// others.
func creditFloor(want int64) int64 {
	if want <= smallWrite {
		return 0
	}
	return creditReserve
}

// takeCredit reserves up to want bytes of session credit, waiting for some
// to be granted if none is left (for a large write: none above the
// reserve).
func (s *Session) takeCredit(want int64, st *Stream) (int64, error) {
	floor := creditFloor(want)
	for {
		if n := s.send.take(want, floor); n > 0 {
			return n, nil
		}
		ch := s.send.arrival()
		if s.send.credit.Load() > floor {
			continue
		}
		// The stream's waiters are made before its error is looked at, so
		// a Close or reset from now on reaches this wait.
		w := st.waiters()
		if err := st.writeErr(); err != nil {
			return 0, err
		}
		select {
		case <-ch:
		case <-w.writeCh:
			if err := st.writeErr(); err != nil {
				return 0, err
			}
		case <-w.wdl.wait():
			return 0, ErrTimeout
		case <-s.done:
			return 0, s.Err()
		}
	}
}

// giveCredit returns unused session credit (a write that failed after
// reserving it).
func (s *Session) giveCredit(n int64) { s.send.add(n) }

// grantSession adds the peer's WINDOW_UPDATE for the session.
func (s *Session) grantSession(inc int64) error {
	if s.send.add(inc) > frame.MaxWindow {
		return frame.SessionError(frame.CodeFlowControl, "the peer granted session credit beyond %d", int64(frame.MaxWindow))
	}
	return nil
}

func (s *Session) queueWindowUpdate(id uint32, inc uint32) {
	s.sendMu.Lock()
	s.ctrl = frame.AppendWindowUpdate(s.ctrl, id, inc)
	s.sendMu.Unlock()
	if !s.ctrlThrough() {
		s.signalWriter()
	}
}

// queueStreamCredit sends a stream's credit, with a PING to time the queue
// if one is due (probeDue).
func (s *Session) queueStreamCredit(id uint32, inc uint32) {
	ping := s.probeDue()
	s.sendMu.Lock()
	s.ctrl = frame.AppendWindowUpdate(s.ctrl, id, inc)
	if ping != 0 {
		s.ctrl = frame.AppendPing(s.ctrl, false, ping)
	}
	s.sendMu.Unlock()
	if !s.ctrlThrough() {
		s.signalWriter()
	}
}
