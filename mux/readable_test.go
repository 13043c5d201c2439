package mux

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// tstReadablePair opens a stream from c and accepts it on s, the peer's
// end first written to so that the accept sees it.
func tstReadablePair(t *testing.T) (c, s *Session, local, peer *Stream) {
	t.Helper()
	c, s = sessionPair(t, DefaultConfig())
	local, err := c.OpenStreamWith(context.Background(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	peer, err = s.AcceptStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := io.ReadFull(peer, b[:]); err != nil {
		t.Fatal(err)
	}
	return c, s, local, peer
}

// An idle stream runs nothing; data arriving starts the function once,
// and a Read from it gets the data without blocking.
func TestAfterReadableRunsWhenDataArrives(t *testing.T) {
	_, _, local, peer := tstReadablePair(t)
	got := make(chan string, 2)
	peer.AfterReadable(func() {
		peer.SetReadDeadline(time.Now().Add(tstTimeout))
		var b [5]byte
		n, err := io.ReadFull(peer, b[:])
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(b[:n])
	})
	tstNotWithin(t, got, 50*time.Millisecond, "AfterReadable's function on an idle stream")
	if _, err := local.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if s := tstRecv(t, got, "AfterReadable's function"); s != "hello" {
		t.Fatalf("read %q, want hello", s)
	}
	if _, err := local.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	tstNotWithin(t, got, 50*time.Millisecond, "AfterReadable's function a second time without being armed again")
}

// Data already buffered starts the function at once, and arming it again
// from inside waits for the next data: a loop with no goroutine between
// messages.
func TestAfterReadableRearmedFromItsFunction(t *testing.T) {
	_, _, local, peer := tstReadablePair(t)
	if _, err := local.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	got := make(chan byte, 4)
	var serve func()
	serve = func() {
		peer.AfterReadable(func() {
			var b [1]byte
			if _, err := peer.Read(b[:]); err != nil {
				close(got)
				return
			}
			got <- b[0]
			serve()
		})
	}
	serve()
	var sb strings.Builder
	for range 2 {
		sb.WriteByte(tstRecv(t, got, "a byte already buffered"))
	}
	if _, err := local.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	sb.WriteByte(tstRecv(t, got, "a byte written later"))
	if sb.String() != "abc" {
		t.Fatalf("read %q, want abc", sb.String())
	}
	local.CloseWrite()
	if _, ok := <-got; ok {
		t.Fatal("got a byte after CloseWrite, want the channel closed by EOF")
	}
}

// Every end of the stream's incoming side starts the function, so that
// its Read learns why: the peer's CloseWrite or reset, a local Close, the
// session's end from either side.
func TestAfterReadableRunsAtTheEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(c, s *Session, local, peer *Stream)
		want error
	}{
		{"peer closes its writing", func(_, _ *Session, local, _ *Stream) { local.CloseWrite() }, io.EOF},
		{"peer resets", func(_, _ *Session, local, _ *Stream) { local.Reset() }, ErrStreamReset},
		{"closed here", func(_, _ *Session, _, peer *Stream) { peer.Close() }, ErrStreamClosed},
		{"session closed here", func(_, s *Session, _, _ *Stream) { s.Close() }, nil},
		{"peer's session closed", func(c, _ *Session, _, _ *Stream) { c.Close() }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s, local, peer := tstReadablePair(t)
			errc := make(chan error, 1)
			peer.AfterReadable(func() {
				var b [1]byte
				_, err := peer.Read(b[:])
				errc <- err
			})
			tc.end(c, s, local, peer)
			err := tstRecv(t, errc, "AfterReadable's function")
			if err == nil {
				t.Fatal("Read returned no error at the stream's end")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Read: %v, want %v", err, tc.want)
			}
		})
	}
}

// A second call before the first function ran replaces it.
func TestAfterReadableReplacesAWaitingFunction(t *testing.T) {
	_, _, local, peer := tstReadablePair(t)
	ran := make(chan int, 2)
	peer.AfterReadable(func() { ran <- 1 })
	peer.AfterReadable(func() { ran <- 2 })
	local.Write([]byte("z"))
	if n := tstRecv(t, ran, "the function"); n != 2 {
		t.Fatalf("function %d ran, want the second", n)
	}
	tstNotWithin(t, ran, 50*time.Millisecond, "the replaced function")
}
