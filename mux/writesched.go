package mux

// Write scheduling: which stream's frame goes out next. Each stream queues
// its DATA payloads (and its CLOSE) in a sendQueue; a writeScheduler holds
// the queues that have something to send, and nextFrame hands the writer
// one turn of the queue whose turn it is, then puts the queue back behind
// the others if more is waiting, so a bulk stream cannot starve a small
// request. What a turn carries (a payload, the CLOSE, a RESET after it) is
// decided here; the writer only appends it to its batch. Everything here
// is guarded by the session's sendMu.

// writeScheduler orders the streams that have frames to send.
type writeScheduler interface {
	// Push schedules q, which has a frame to send. A queue already
	// scheduled keeps its place.
	Push(q *sendQueue)
	// Pop takes the next queue to serve, or nil if none is scheduled.
	Pop() *sendQueue
	// Len is the number of queues scheduled.
	Len() int
}

// outFrame is one turn of a stream: its oldest queued DATA payload, its
// CLOSE, or both, in that order.
type outFrame struct {
	st    *Stream
	data  *buffer // a DATA payload, or nil
	fin   bool    // the stream's CLOSE goes out
	reset bool    // a RESET(CANCEL) right after the CLOSE: the peer was still sending
}

// nextFrame takes the next turn from the queue at the front of sched; ok
// is false if no queue is scheduled. A turn may be empty: a stream reset
// while scheduled has nothing left to send.
func nextFrame(sched writeScheduler) (f outFrame, ok bool) {
	q := sched.Pop()
	if q == nil {
		return outFrame{}, false
	}
	f = q.next()
	if q.hasData() {
		sched.Push(q)
	}
	return f, true
}

// next takes the queue's next turn: its oldest payload, and the CLOSE once
// no payload is left before it. Taking a payload makes room in the
// stream's queue, so a Write blocked on it is woken.
func (q *sendQueue) next() outFrame {
	f := outFrame{st: q.st}
	if q.hasData() {
		f.data = q.pop()
		q.st.queued.Add(-int64(len(f.data.B)))
		q.st.wakeWriter()
	}
	if q.finDue() {
		q.finWritten = true
		f.fin, f.reset = true, q.resetAfterFin
	}
	return f
}

// sendQueue is one stream's frames waiting for the writer, oldest first.
type sendQueue struct {
	st            *Stream // the stream whose frames these are
	bufs          []*buffer
	head          int32 // int32, not int: it keeps a Stream within 256 bytes
	scheduled     bool  // in the scheduler
	finQueued     bool  // CLOSE goes out once bufs drains
	finWritten    bool
	resetAfterFin bool // Close with the peer still sending: RESET right after CLOSE
}

// push adds a payload at the back.
func (q *sendQueue) push(b *buffer) {
	if q.head > 0 && len(q.bufs) == cap(q.bufs) {
		k := copy(q.bufs, q.bufs[q.head:])
		clear(q.bufs[k:])
		q.bufs, q.head = q.bufs[:k], 0
	}
	q.bufs = append(q.bufs, b)
}

// hasData reports whether a payload is waiting.
func (q *sendQueue) hasData() bool { return int(q.head) < len(q.bufs) }

// pop takes the oldest payload; hasData must be true.
func (q *sendQueue) pop() *buffer {
	b := q.bufs[q.head]
	q.bufs[q.head] = nil
	q.head++
	if int(q.head) == len(q.bufs) {
		q.bufs, q.head = q.bufs[:0], 0
	}
	return b
}

// finDue reports whether the CLOSE is the next frame to go.
func (q *sendQueue) finDue() bool { return !q.hasData() && q.finQueued && !q.finWritten }

// drop discards every queued payload, returns how many bytes they held,
// and marks the queue finished: nothing more goes out for the stream.
func (q *sendQueue) drop() int64 {
	var n int64
	for i := int(q.head); i < len(q.bufs); i++ {
		n += int64(len(q.bufs[i].B))
		putBuf(q.bufs[i])
		q.bufs[i] = nil
	}
	q.bufs, q.head = nil, 0
	q.finQueued, q.finWritten = true, true
	return n
}

// roundRobin serves the scheduled queues in turn, in the order they were
// pushed.
type roundRobin struct {
	ready []*sendQueue
	head  int
}

func (r *roundRobin) Push(q *sendQueue) {
	if q.scheduled {
		return
	}
	q.scheduled = true
	if r.head > 0 && len(r.ready) == cap(r.ready) {
		k := copy(r.ready, r.ready[r.head:])
		clear(r.ready[k:])
		r.ready, r.head = r.ready[:k], 0
	}
	r.ready = append(r.ready, q)
}

func (r *roundRobin) Pop() *sendQueue {
	if r.head == len(r.ready) {
		return nil
	}
	q := r.ready[r.head]
	r.ready[r.head] = nil
	r.head++
	if r.head == len(r.ready) {
		r.ready, r.head = r.ready[:0], 0
	}
	q.scheduled = false
	return q
}

func (r *roundRobin) Len() int { return len(r.ready) - r.head }
