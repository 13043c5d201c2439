package mux

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"
)

// WriteTo hands every byte to the writer in order and ends with a nil error
// at the peer's CloseWrite, as io.Copy expects.
func TestStreamWriteToCopiesUntilEOF(t *testing.T) {
	c, s := sessionPair(t, DefaultConfig())
	data := make([]byte, 3<<20+123)
	rand.Read(data)
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		st.Write(data)
		st.CloseWrite()
	}()
	peer, err := s.AcceptStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	n, err := io.Copy(&got, peer) // goes through Stream.WriteTo
	if err != nil {
		t.Fatalf("io.Copy: %v", err)
	}
	if n != int64(len(data)) || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("copied %d bytes, want %d identical ones", n, len(data))
	}
	st.Close()
	peer.Close()
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, errors.New("disk full")
	}
	w.after -= len(p)
	return len(p), nil
}

// A writer that fails stops WriteTo with its error; a read deadline stops it
// with a timeout.
func TestStreamWriteToStops(t *testing.T) {
	c, s := sessionPair(t, DefaultConfig())
	st, _ := c.OpenStream(context.Background())
	st.Write(make([]byte, 200<<10))
	peer, err := s.AcceptStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := peer.WriteTo(&failingWriter{after: 64 << 10}); err == nil || err.Error() != "disk full" {
		t.Fatalf("WriteTo with a failing writer: %v, want the writer's error", err)
	}
	peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = peer.WriteTo(io.Discard) // drains what is left, then times out
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("WriteTo past the read deadline: %v, want a timeout", err)
	}
	st.Close()
	peer.Close()
}

// Stats reports the window figures: the session window as configured and
// the largest stream window, 0 with no stream open.
func TestStatsWindows(t *testing.T) {
	cfg := DefaultConfig()
	cfg.InitialStreamWindow = 512 << 10
	c, _ := sessionPair(t, cfg)
	if got := c.Stats(); got.LargestStreamWindow != 0 || got.SessionWindow != int64(cfg.SessionWindow) {
		t.Fatalf("no streams: LargestStreamWindow %d, SessionWindow %d; want 0 and %d", got.LargestStreamWindow, got.SessionWindow, cfg.SessionWindow)
	}
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := c.Stats().LargestStreamWindow; got != int64(cfg.InitialStreamWindow) {
		t.Fatalf("one stream: LargestStreamWindow %d, want the initial %d", got, cfg.InitialStreamWindow)
	}
}
