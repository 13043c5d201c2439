package mux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tests in this file hold Stream to the net.Conn contract, the way
// callers written for TCP (net/http, TLS, proxies) rely on it.

var _ net.Conn = (*Stream)(nil)
var _ net.Listener = (*Session)(nil)

// tstEchoPair returns a client stream whose peer echoes everything back.
func tstEchoPair(t *testing.T) *Stream {
	t.Helper()
	c, s := sessionPair(t, DefaultConfig())
	tstServe(t, s, tstEcho)
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// tstEchoOnce writes msg and reads it back.
func tstEchoOnce(t *testing.T, st *Stream, msg []byte) {
	t.Helper()
	_ = st.SetDeadline(time.Now().Add(tstTimeout))
	defer st.SetDeadline(time.Time{})
	if _, err := st.Write(msg); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(st, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("the echo differs from what was sent")
	}
}

// TestConnPastDeadline: with a deadline already passed, Read and Write fail
// at once with nothing transferred, even when they could proceed without
// blocking, as net.TCPConn does; moving the deadline makes the stream
// usable again.
func TestConnPastDeadline(t *testing.T) {
	st := tstEchoPair(t)
	tstEchoOnce(t, st, []byte("warm up"))

	_ = st.SetDeadline(time.Now().Add(-time.Hour))
	n, err := st.Write(make([]byte, 1024))
	if n != 0 {
		t.Errorf("Write with a passed deadline wrote %d bytes; want 0", n)
	}
	tstIsTimeout(t, err, "Write with a passed deadline")
	n, err = st.Read(make([]byte, 1024))
	if n != 0 {
		t.Errorf("Read with a passed deadline read %d bytes; want 0", n)
	}
	tstIsTimeout(t, err, "Read with a passed deadline")

	_ = st.SetDeadline(time.Time{})
	// If the Write above sent anything, it comes back ahead of this.
	tstEchoOnce(t, st, []byte("after the deadline was cleared"))
}

// TestConnPastReadDeadlineWithData: data already buffered is not returned
// once the read deadline has passed (net.TCPConn behaves the same); it is
// all there after the deadline moves.
func TestConnPastReadDeadlineWithData(t *testing.T) {
	st := tstEchoPair(t)
	msg := []byte("buffered before the deadline")
	if _, err := st.Write(msg); err != nil {
		t.Fatal(err)
	}
	tstEventually(t, "the echo to be buffered", func() bool { return tstUnread(st) == len(msg) })
	_ = st.SetReadDeadline(time.Now().Add(-time.Second))
	n, err := st.Read(make([]byte, 64))
	if n != 0 {
		t.Errorf("Read with a passed deadline returned %d buffered bytes; want 0 and a timeout", n)
	}
	tstIsTimeout(t, err, "Read with a passed deadline and data buffered")
	_ = st.SetReadDeadline(time.Now().Add(tstTimeout))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(st, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("after moving the deadline: %q, %v; want %q", got, err, msg)
	}
}

// TestConnConcurrentMethods calls every method from many goroutines at
// once; under -race this finds unsynchronised state.
func TestConnConcurrentMethods(t *testing.T) {
	st := tstEchoPair(t)
	var wg sync.WaitGroup
	const workers = 8
	stop := make(chan struct{})
	// Each kind of caller counts its rounds; the test runs until every
	// kind has made enough of them, not for a fixed time.
	const rounds = 20
	var writes, reads, deadlines, others atomic.Int64
	for i := range workers {
		wg.Add(4)
		go func() { // writers
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := st.Write(tstPool[:1+i*100]); err != nil {
					return
				}
				writes.Add(1)
			}
		}()
		go func() { // readers
			defer wg.Done()
			buf := make([]byte, 4096)
			for {
				if _, err := st.Read(buf); err != nil {
					return
				}
				reads.Add(1)
			}
		}()
		go func() { // deadline setters
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = st.SetDeadline(time.Now().Add(time.Duration(i+1) * time.Second))
				_ = st.SetReadDeadline(time.Now().Add(time.Hour))
				_ = st.SetWriteDeadline(time.Time{})
				deadlines.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
		go func() { // the rest of the interface
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = st.LocalAddr().String()
				_ = st.RemoteAddr().String()
				_ = st.ID()
				_ = st.Session().Stats()
				others.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	tstEventually(t, fmt.Sprintf("%d rounds of every kind of call", rounds), func() bool {
		return min(writes.Load(), reads.Load(), deadlines.Load(), others.Load()) >= rounds
	})
	close(stop)
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	tstRecv(t, finished, "every goroutine to return after Close")
}

// TestConnClosedCalls: calls after Close fail, and Close is idempotent.
func TestConnClosedCalls(t *testing.T) {
	st := tstEchoPair(t)
	tstEchoOnce(t, st, []byte("x"))
	for i := range 2 {
		if err := st.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("Read after Close: %v; want ErrStreamClosed", err)
	}
	if _, err := st.Write([]byte("x")); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("Write after Close: %v; want ErrStreamClosed", err)
	}
	if err := st.CloseWrite(); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("CloseWrite after Close: %v; want ErrStreamClosed", err)
	}
	if err := st.Reset(); err != nil {
		t.Errorf("Reset after Close: %v; want nil", err)
	}
	// Setting deadlines on a closed stream is harmless.
	_ = st.SetDeadline(time.Now().Add(time.Millisecond))
	_ = st.SetDeadline(time.Time{})
	if errors.Is(ErrStreamClosed, os.ErrDeadlineExceeded) {
		t.Error("ErrStreamClosed must not look like a timeout")
	}
}

// TestSessionAsListener: a Session serves as a net.Listener whose Accept
// yields the peer's streams, and Close ends Accept.
func TestSessionAsListener(t *testing.T) {
	c, s := sessionPair(t, DefaultConfig())
	var ln net.Listener = s
	if ln.Addr() == nil || ln.Addr().String() != s.LocalAddr().String() {
		t.Errorf("Addr() = %v, want the connection's local address %v", ln.Addr(), s.LocalAddr())
	}
	accepted := make(chan net.Conn, 1)
	acceptErr := tstCall(func() error {
		conn, err := ln.Accept()
		if err == nil {
			accepted <- conn
		}
		return err
	})
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := tstRecv(t, acceptErr, "Accept"); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	conn := <-accepted
	_ = conn.SetReadDeadline(time.Now().Add(tstTimeout))
	b := make([]byte, 2)
	if _, err := io.ReadFull(conn, b); err != nil || string(b) != "hi" {
		t.Fatalf("reading the accepted conn: %q, %v", b, err)
	}
	blocked := tstCall(func() error { _, err := ln.Accept(); return err })
	tstNotWithin(t, blocked, 20*time.Millisecond, "Accept with nothing opened")
	if err := ln.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tstRecv(t, blocked, "Accept to return after Close"); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("Accept after Close: %v; want ErrSessionClosed", err)
	}
}
