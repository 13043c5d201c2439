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
