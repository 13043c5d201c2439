package mux

import (
	"slices"
	"testing"
)

// The write scheduler alone: queues of fake frames, no session.

// tstQueues makes a queue per stream holding frames[i] payloads.
func tstQueues(frames ...int) []*sendQueue {
	qs := make([]*sendQueue, len(frames))
	for i, n := range frames {
		qs[i] = &sendQueue{st: &Stream{id: uint32(2*i + 1)}}
		for range n {
			qs[i].push(getBuf(1))
		}
	}
	return qs
}

// tstDrain serves sched the way the writer does, one frame per pop, and
// returns the stream IDs in the order their frames went out.
func tstDrain(sched writeScheduler) []uint32 {
	var order []uint32
	for q := sched.Pop(); q != nil; q = sched.Pop() {
		putBuf(q.pop())
		order = append(order, q.st.id)
		if q.hasData() {
			sched.Push(q)
		}
	}
	return order
}

// TestRoundRobinFair: streams take turns a frame at a time, so a stream
// with one frame behind a bulk stream goes out second, not last.
func TestRoundRobinFair(t *testing.T) {
	qs := tstQueues(5, 1, 2)
	var rr roundRobin
	for _, q := range qs {
		rr.Push(q)
	}
	got := tstDrain(&rr)
	want := []uint32{1, 3, 5, 1, 5, 1, 1, 1}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if rr.Len() != 0 {
		t.Fatalf("Len %d after draining", rr.Len())
	}
}

// TestRoundRobinPushOnce: a queue pushed again while scheduled keeps its
// place and is served once per turn.
func TestRoundRobinPushOnce(t *testing.T) {
	qs := tstQueues(2, 2)
	var rr roundRobin
	rr.Push(qs[0])
	rr.Push(qs[1])
	rr.Push(qs[0])
	if rr.Len() != 2 {
		t.Fatalf("Len %d, want 2", rr.Len())
	}
	if got, want := tstDrain(&rr), []uint32{1, 3, 1, 3}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// TestRoundRobinLateArrival: a stream that gets data while others are
// being served joins at the back, behind the streams already waiting
// (stream 1 included, which went back after its first frame).
func TestRoundRobinLateArrival(t *testing.T) {
	qs := tstQueues(3, 3, 1)
	var rr roundRobin
	rr.Push(qs[0])
	rr.Push(qs[1])
	var order []uint32
	for i := 0; ; i++ {
		q := rr.Pop()
		if q == nil {
			break
		}
		putBuf(q.pop())
		order = append(order, q.st.id)
		if q.hasData() {
			rr.Push(q)
		}
		if i == 0 {
			rr.Push(qs[2]) // arrives after stream 1's first frame
		}
	}
	if want := []uint32{1, 3, 1, 5, 3, 1, 3}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

// TestSendQueueDrop: dropping a queue returns its bytes and marks it
// finished, so nothing more goes out for the stream.
func TestSendQueueDrop(t *testing.T) {
	q := &sendQueue{}
	q.push(getBuf(10))
	q.push(getBuf(20))
	if n := q.drop(); n != 30 {
		t.Fatalf("drop returned %d bytes, want 30", n)
	}
	if q.hasData() || !q.finQueued || !q.finWritten || q.finDue() {
		t.Fatalf("after drop: hasData %v finQueued %v finWritten %v finDue %v", q.hasData(), q.finQueued, q.finWritten, q.finDue())
	}
}

// TestNextFrameTurns: the scheduler hands out one turn per stream in
// order; a stream's CLOSE rides with its last payload, the RESET of a
// Close with the peer still sending follows the CLOSE, and the queue
// leaves the scheduler once its CLOSE is out.
func TestNextFrameTurns(t *testing.T) {
	type turn struct {
		id        uint32
		data      int // payload bytes, 0 for none
		fin, rset bool
	}
	qs := tstQueues(2, 1, 0)
	qs[0].finQueued = true // CloseWrite after two payloads
	// Close with the peer still sending: CLOSE, then RESET.
	qs[1].finQueued, qs[1].resetAfterFin = true, true
	qs[2].finQueued = true // CloseWrite with nothing queued
	var rr roundRobin
	for _, q := range qs {
		q.st.queued.Store(int64(len(q.bufs)))
		rr.Push(q)
	}
	var got []turn
	for {
		f, ok := nextFrame(&rr)
		if !ok {
			break
		}
		tu := turn{id: f.st.id, fin: f.fin, rset: f.reset}
		if f.data != nil {
			tu.data = len(f.data.B)
			putBuf(f.data)
		}
		got = append(got, tu)
	}
	want := []turn{
		{1, 1, false, false},
		{3, 1, true, true},
		{5, 0, true, false},
		{1, 1, true, false},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("turns %v, want %v", got, want)
	}
	for _, q := range qs {
		if n := q.st.queued.Load(); n != 0 {
			t.Errorf("stream %d: %d bytes still counted as queued after its payloads went", q.st.id, n)
		}
		if !q.finWritten || q.finDue() {
			t.Errorf("stream %d: CLOSE not marked written", q.st.id)
		}
	}
}

// TestNextFrameAfterDrop: a stream reset while scheduled gives one empty
// turn and leaves the scheduler; nothing of it goes out.
func TestNextFrameAfterDrop(t *testing.T) {
	qs := tstQueues(3)
	var rr roundRobin
	rr.Push(qs[0])
	qs[0].drop()
	f, ok := nextFrame(&rr)
	if !ok || f.data != nil || f.fin || f.reset {
		t.Fatalf("turn of a dropped queue: %+v, %v; want an empty turn", f, ok)
	}
	if _, ok := nextFrame(&rr); ok || rr.Len() != 0 {
		t.Fatalf("a dropped queue stayed scheduled (Len %d)", rr.Len())
	}
}
