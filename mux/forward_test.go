package mux

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type fwdResult struct {
	n   int64
	err error
}

// tstForward accepts the stream st's peer opened and forwards it into a
// fresh TCP socket; it returns the socket's far end and Forward's result.
func tstForward(t *testing.T, s *Session, count *atomic.Int64) (*Stream, net.Conn, <-chan fwdResult) {
	t.Helper()
	peer, err := s.AcceptStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dst, far := tcpPair(t)
	t.Cleanup(func() { dst.Close(); far.Close() })
	done := make(chan fwdResult, 1)
	if err := peer.Forward(dst.(*net.TCPConn), count, func(n int64, err error) {
		dst.(*net.TCPConn).CloseWrite()
		done <- fwdResult{n, err}
	}); err != nil {
		t.Fatal(err)
	}
	return peer, far, done
}

// drainGoroutines counts goroutines running a Forward's drain.
func drainGoroutines() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "mux.(*Stream).drainForward")
}

// Forward delivers every byte once, in order, whether the socket keeps up
// (the session's reader writes into it) or fills up (a drain goroutine
// waits for it), and reports the count and a clean end after CloseWrite.
func TestForwardDeliversEverything(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pauseRead time.Duration
	}{
		{"socket keeps up", 0},
		{"socket fills up", 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := sessionPair(t, DefaultConfig())
			data := make([]byte, 8<<20)
			rand.Read(data)
			st, err := c.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for i := 0; i < 64; i++ {
					st.Write(data[i*1024 : (i+1)*1024])
					time.Sleep(time.Millisecond)
				}
				st.Write(data[64*1024:])
				st.CloseWrite()
			}()
			var count atomic.Int64
			peer, far, done := tstForward(t, s, &count)
			time.Sleep(tc.pauseRead)
			far.SetReadDeadline(time.Now().Add(30 * time.Second))
			got, err := io.ReadAll(far)
			if err != nil {
				t.Fatalf("reading the socket: %v", err)
			}
			r := tstRecv(t, done, "Forward's end")
			if r.err != nil || r.n != int64(len(data)) {
				t.Fatalf("Forward ended with %d, %v; want %d, nil", r.n, r.err, len(data))
			}
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatalf("socket got %d bytes, want %d identical ones", len(got), len(data))
			}
			if count.Load() != int64(len(data)) {
				t.Fatalf("the meter counted %d bytes, want %d", count.Load(), len(data))
			}
			if n := drainGoroutines(); n != 0 {
				t.Fatalf("%d drain goroutines left after the end", n)
			}
			st.Close()
			peer.Close()
		})
	}
}

// An idle forwarded stream has no goroutine: neither before data, nor
// after data the socket took at once.
func TestForwardIdleHoldsNoGoroutine(t *testing.T) {
	c, s := sessionPair(t, DefaultConfig())
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("hello"))
	peer, far, done := tstForward(t, s, nil)
	buf := make([]byte, 5)
	far.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(far, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("socket read %q, %v", buf, err)
	}
	tstEventually(t, "the drain goroutine of the first payload to end", func() bool { return drainGoroutines() == 0 })
	for i := 0; i < 10; i++ {
		st.Write([]byte("ping"))
		if _, err := io.ReadFull(far, buf[:4]); err != nil || string(buf[:4]) != "ping" {
			t.Fatalf("socket read %q, %v", buf[:4], err)
		}
		if n := drainGoroutines(); n != 0 {
			t.Fatalf("after payload %d the socket took at once, %d drain goroutines run; want none", i, n)
		}
	}
	if s.Stats().SinkBytes < 40 {
		t.Fatalf("the session's reader wrote %d bytes into the socket; want the 40 of the pings", s.Stats().SinkBytes)
	}
	st.CloseWrite()
	if r := tstRecv(t, done, "Forward's end"); r.err != nil || r.n != 45 {
		t.Fatalf("Forward ended with %d, %v; want 45, nil", r.n, r.err)
	}
	st.Close()
	peer.Close()
}

// Every way a stream can end reaches done: the peer's reset, a local
// Reset or Close, the session's end.
func TestForwardReportsEveryEnd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		end   func(st, peer *Stream, c, s *Session)
		check func(error) bool
	}{
		{"peer resets", func(st, _ *Stream, _, _ *Session) { st.Reset() }, func(err error) bool {
			var re *ResetError
			return errors.As(err, &re)
		}},
		{"local reset", func(_, peer *Stream, _, _ *Session) { peer.Reset() }, func(err error) bool { return err != nil }},
		{"local close", func(_, peer *Stream, _, _ *Session) { peer.Close() }, func(err error) bool { return err != nil }},
		{"session closes", func(_, _ *Stream, _, s *Session) { s.Close() }, func(err error) bool { return err != nil }},
		{"peer session closes", func(_, _ *Stream, c, _ *Session) { c.Close() }, func(err error) bool { return err != nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := sessionPair(t, DefaultConfig())
			st, err := c.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			st.Write([]byte("x"))
			peer, far, done := tstForward(t, s, nil)
			b := make([]byte, 1)
			far.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(far, b); err != nil {
				t.Fatal(err)
			}
			tc.end(st, peer, c, s)
			r := tstRecv(t, done, "Forward's end")
			if !tc.check(r.err) {
				t.Fatalf("Forward ended with %v", r.err)
			}
			if r.n != 1 {
				t.Fatalf("Forward counted %d bytes, want 1", r.n)
			}
			st.Close()
			peer.Close()
		})
	}
}

// A socket the far end reset fails the Forward instead of stalling it.
func TestForwardSocketFailure(t *testing.T) {
	c, s := sessionPair(t, DefaultConfig())
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("x"))
	peer, far, done := tstForward(t, s, nil)
	b := make([]byte, 1)
	far.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(far, b); err != nil {
		t.Fatal(err)
	}
	far.(*net.TCPConn).SetLinger(0)
	far.Close()
	// Keep sending until a write into the reset socket fails.
	go func() {
		chunk := make([]byte, 32<<10)
		for {
			if _, err := st.Write(chunk); err != nil {
				return
			}
		}
	}()
	if r := tstRecv(t, done, "Forward's end"); r.err == nil {
		t.Fatal("Forward into a reset socket ended without an error")
	}
	peer.Reset()
	st.Close()
}
