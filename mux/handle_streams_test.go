package mux

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"
)

// TestHandleStreams: once a side hands streams to a function, every stream
// the peer opens reaches it exactly once, those queued before the call
// included, in order of opening for those that arrive after it, and none
// is left for AcceptStream.
func TestHandleStreams(t *testing.T) {
	c, s := tstPair(t, DefaultConfig(), DefaultConfig())
	const before, after = 3, 50
	open := func(i int) {
		st, err := c.OpenStreamWith(context.Background(), []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		_ = st.SetDeadline(time.Now().Add(tstTimeout))
		go func() {
			// Each stream echoes its own number back once handled.
			b := make([]byte, 1)
			if _, err := io.ReadFull(st, b); err != nil || b[0] != byte(i) {
				t.Errorf("stream %d echoed %v, %v", i, b, err)
			}
			st.Close()
		}()
	}
	for i := range before {
		open(i)
	}
	tstEventually(t, "the streams opened first to wait in the accept backlog", func() bool { return s.NumStreams() == before })

	var mu sync.Mutex
	seen := map[uint32]int{}
	var order []uint32
	var wg sync.WaitGroup
	wg.Add(before + after)
	s.HandleStreams(func(st *Stream) {
		mu.Lock()
		seen[st.ID()]++
		order = append(order, st.ID())
		mu.Unlock()
		go func() {
			defer wg.Done()
			_ = st.SetDeadline(time.Now().Add(tstTimeout))
			b := make([]byte, 1)
			if _, err := io.ReadFull(st, b); err != nil {
				t.Errorf("reading a handled stream: %v", err)
				return
			}
			_, _ = st.Write(b)
			st.CloseWrite()
		}()
	})
	for i := range after {
		open(before + i)
	}
	tstRecv(t, tstCall(func() error { wg.Wait(); return nil }), "every stream to be handled")
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != before+after {
		t.Fatalf("handled %d distinct streams, want %d", len(seen), before+after)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("stream %d handled %d times", id, n)
		}
	}
	for i := before + 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			t.Errorf("streams opened after HandleStreams were handled out of order: %v", order[before:])
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if st, err := s.AcceptStream(ctx); err == nil {
		t.Fatalf("AcceptStream returned stream %d; every stream should have gone to the handler", st.ID())
	}
}
