package mux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// tstStreamPair opens a stream on a fresh session pair and returns both
// ends of it, plus the sessions.
func tstStreamPair(t testing.TB, cfg Config) (cs, ss *Stream, c, s *Session) {
	t.Helper()
	c, s = sessionPair(t, cfg)
	return tstOpenPair(t, c, s)
}

// tstPipeStreamPair is tstStreamPair over net.Pipe, for a testing/synctest
// bubble (see tstPipePair).
func tstPipeStreamPair(t testing.TB, cfg Config) (cs, ss *Stream, c, s *Session) {
	t.Helper()
	c, s = tstPipePair(t, cfg, cfg)
	return tstOpenPair(t, c, s)
}

// tstOpenPair opens a stream from c and accepts it on s.
func tstOpenPair(t testing.TB, c, s *Session) (cs, ss *Stream, _, _ *Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tstTimeout)
	defer cancel()
	cs, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	ss, err = s.AcceptStream(ctx)
	if err != nil {
		t.Fatalf("AcceptStream: %v", err)
	}
	if cs.ID() != ss.ID() || cs.ID()%2 != 1 {
		t.Fatalf("stream IDs: client %d, server %d; want the same odd ID", cs.ID(), ss.ID())
	}
	return cs, ss, c, s
}

// tstReadAll reads a stream to its end under a deadline.
func tstReadAll(t testing.TB, st *Stream, who string) []byte {
	t.Helper()
	_ = st.SetReadDeadline(time.Now().Add(tstTimeout))
	b, err := io.ReadAll(st)
	if err != nil {
		t.Fatalf("%s: ReadAll: %v (after %d bytes)", who, err, len(b))
	}
	return b
}

func TestHalfClose(t *testing.T) {
	for _, first := range []string{"client", "server"} {
		t.Run(first+" closes first", func(t *testing.T) {
			cs, ss, c, s := tstStreamPair(t, DefaultConfig())
			a, b := cs, ss // a half-closes first
			if first == "server" {
				a, b = ss, cs
			}
			// msgA is beyond the initial window: the writer must wait for
			// the reader's credit before its CLOSE goes out.
			msgA, msgB := tstPool[:300<<10], tstPool[1<<20:1<<20+100]
			sent := tstCall(func() error {
				if _, err := a.Write(msgA); err != nil {
					return err
				}
				return a.CloseWrite()
			})
			if got := tstReadAll(t, b, "the reading side"); !bytes.Equal(got, msgA) {
				t.Fatalf("read %d bytes before EOF, want the %d written", len(got), len(msgA))
			}
			if err := tstRecv(t, sent, "Write+CloseWrite"); err != nil {
				t.Fatalf("Write+CloseWrite: %v", err)
			}
			if _, err := a.Write([]byte("late")); !errors.Is(err, ErrWriteClosed) {
				t.Errorf("Write after CloseWrite: %v; want ErrWriteClosed", err)
			}
			if err := a.CloseWrite(); err != nil {
				t.Errorf("a second CloseWrite: %v; want nil", err)
			}
			// EOF again on a second Read.
			if n, err := b.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("Read after EOF: %d, %v; want 0, io.EOF", n, err)
			}

			// The other direction is still open.
			sent = tstCall(func() error {
				if _, err := b.Write(msgB); err != nil {
					return err
				}
				return b.CloseWrite()
			})
			if got := tstReadAll(t, a, "the side that half-closed first"); !bytes.Equal(got, msgB) {
				t.Fatalf("the side that half-closed read %d bytes, want %d", len(got), len(msgB))
			}
			if err := tstRecv(t, sent, "the second Write+CloseWrite"); err != nil {
				t.Fatalf("Write after the peer's half-close: %v", err)
			}
			// Both directions are closed: both sides forget the stream
			// without a Close.
			tstEventually(t, "both sides to forget a stream closed in both directions", func() bool {
				return c.NumStreams() == 0 && s.NumStreams() == 0
			})
			cs.Close()
			ss.Close()
		})
	}
}

func TestResetPropagates(t *testing.T) {
	for _, resetter := range []string{"client", "server"} {
		t.Run(resetter+" resets", func(t *testing.T) {
			cs, ss, _, _ := tstStreamPair(t, DefaultConfig())
			local, peer := cs, ss
			if resetter == "server" {
				local, peer = ss, cs
			}
			_ = peer.SetDeadline(time.Now().Add(tstTimeout))
			// The peer blocks in Read (nothing sent) and in Write (the
			// local side reads nothing, so credit runs out).
			readDone := tstCall(func() error {
				_, err := peer.Read(make([]byte, 10))
				return err
			})
			writeDone := tstCall(func() error {
				_, err := peer.Write(make([]byte, 2<<20))
				return err
			})
			tstNotWithin(t, readDone, 50*time.Millisecond, "Read with nothing sent")
			tstNotWithin(t, writeDone, 50*time.Millisecond, "Write with credit exhausted")

			if err := local.Reset(); err != nil {
				t.Fatalf("Reset: %v", err)
			}
			for _, call := range []struct {
				name string
				ch   <-chan error
			}{{"Read", readDone}, {"Write", writeDone}} {
				err := tstRecv(t, call.ch, "the peer's blocked "+call.name)
				if !errors.Is(err, ErrStreamReset) {
					t.Errorf("peer's blocked %s returned %v; want ErrStreamReset", call.name, err)
				}
				var re *ResetError
				if !errors.As(err, &re) || re.Code != frame.CodeCancel {
					t.Errorf("peer's blocked %s returned %v; want a *ResetError with code CANCEL", call.name, err)
				}
			}
			// Calls made after the reset fail the same way, at once.
			if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, ErrStreamReset) {
				t.Errorf("peer's Read after the reset: %v; want ErrStreamReset", err)
			}
			if _, err := peer.Write([]byte("x")); !errors.Is(err, ErrStreamReset) {
				t.Errorf("peer's Write after the reset: %v; want ErrStreamReset", err)
			}
			// The resetting side's own calls fail with ErrStreamClosed.
			if _, err := local.Read(make([]byte, 1)); !errors.Is(err, ErrStreamClosed) {
				t.Errorf("Read after own Reset: %v; want ErrStreamClosed", err)
			}
			if _, err := local.Write([]byte("x")); !errors.Is(err, ErrStreamClosed) {
				t.Errorf("Write after own Reset: %v; want ErrStreamClosed", err)
			}
			if err := local.Reset(); err != nil {
				t.Errorf("a second Reset: %v", err)
			}
			if err := peer.Close(); err != nil {
				t.Errorf("Close after being reset: %v", err)
			}
			tstEventually(t, "both sessions to forget the reset stream", func() bool {
				return local.Session().NumStreams() == 0 && peer.Session().NumStreams() == 0
			})
		})
	}
}

// TestCloseWhilePeerWrites: Close delivers what was written before it, and
// tells a peer that is still sending to stop.
func TestCloseWhilePeerWrites(t *testing.T) {
	cs, ss, c, s := tstStreamPair(t, DefaultConfig())
	request := tstPool[:200<<10] // within the initial window: Write returns at once
	_ = cs.SetDeadline(time.Now().Add(tstTimeout))
	_ = ss.SetDeadline(time.Now().Add(tstTimeout))

	// The server streams without end; it must learn that nobody reads.
	peerWrite := tstCall(func() error {
		chunk := tstPool[:64<<10]
		for {
			if _, err := ss.Write(chunk); err != nil {
				return err
			}
		}
	})
	if _, err := cs.Write(request); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := cs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tstRecv(t, peerWrite, "the peer's Write to fail"); !errors.Is(err, ErrStreamReset) {
		t.Fatalf("the peer's Write after Close: %v; want ErrStreamReset", err)
	}
	// Everything written before Close reaches the peer, then EOF.
	if got := tstReadAll(t, ss, "the peer"); !bytes.Equal(got, request) {
		t.Fatalf("the peer read %d bytes, want the %d written before Close", len(got), len(request))
	}
	// The closing side's own calls fail with ErrStreamClosed.
	if _, err := cs.Read(make([]byte, 1)); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("Read after Close: %v; want ErrStreamClosed", err)
	}
	if _, err := cs.Write([]byte("x")); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("Write after Close: %v; want ErrStreamClosed", err)
	}
	if err := cs.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	ss.Close()
	tstEventually(t, "both sessions to forget the stream", func() bool { return c.NumStreams() == 0 && s.NumStreams() == 0 })
	if c.Err() != nil || s.Err() != nil {
		t.Fatalf("closing a stream ended a session: client %v, server %v", c.Err(), s.Err())
	}
}

// TestCloseUnblocksOwnCalls: Close on one goroutine ends a Read and a
// Write blocked on others, as net.Conn does.
func TestCloseUnblocksOwnCalls(t *testing.T) {
	cs, _, _, _ := tstStreamPair(t, DefaultConfig())
	readDone := tstCall(func() error {
		_, err := cs.Read(make([]byte, 10))
		return err
	})
	writeDone := tstCall(func() error {
		_, err := cs.Write(make([]byte, 2<<20))
		return err
	})
	tstNotWithin(t, readDone, 50*time.Millisecond, "Read with nothing sent")
	tstNotWithin(t, writeDone, 50*time.Millisecond, "Write with credit exhausted")
	cs.Close()
	if err := tstRecv(t, readDone, "Read to return after Close"); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("blocked Read after Close: %v; want ErrStreamClosed", err)
	}
	if err := tstRecv(t, writeDone, "Write to return after Close"); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("blocked Write after Close: %v; want ErrStreamClosed", err)
	}
}

// tstIsTimeout checks that err is a deadline error as net.Conn reports it.
func tstIsTimeout(t testing.TB, err error, call string) {
	t.Helper()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%s: %v; want a net.Error with Timeout() == true", call, err)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("%s: %v; want it to match os.ErrDeadlineExceeded", call, err)
	}
}

func TestDeadlines(t *testing.T) {
	// blockRead and blockWrite start a call that blocks: a Read with
	// nothing to read, a Write beyond the credit of a peer that reads
	// nothing.
	blockRead := func(st *Stream) <-chan error {
		return tstCall(func() error { _, err := st.Read(make([]byte, 8)); return err })
	}
	blockWrite := func(st *Stream) <-chan error {
		return tstCall(func() error { _, err := st.Write(make([]byte, 2<<20)); return err })
	}
	const hour = time.Hour
	tests := []struct {
		name  string
		block func(*Stream) <-chan error
		set   func(*Stream, time.Time) error
		first time.Duration // deadline set before the call, from now
		// move, if not zero, is set (from now) once the call has been
		// seen blocked for 50ms; the first deadline is far enough away
		// that it cannot pass before that on a loaded machine.
		move time.Duration
	}{
		{"read deadline passes", blockRead, (*Stream).SetReadDeadline, 50 * time.Millisecond, 0},
		{"write deadline passes", blockWrite, (*Stream).SetWriteDeadline, 50 * time.Millisecond, 0},
		{"SetDeadline covers Read", blockRead, (*Stream).SetDeadline, 50 * time.Millisecond, 0},
		{"SetDeadline covers Write", blockWrite, (*Stream).SetDeadline, 50 * time.Millisecond, 0},
		{"read deadline in the past", blockRead, (*Stream).SetReadDeadline, -time.Second, 0},
		{"write deadline in the past", blockWrite, (*Stream).SetWriteDeadline, -time.Second, 0},
		{"read deadline moved earlier while blocked", blockRead, (*Stream).SetReadDeadline, hour, 30 * time.Millisecond},
		{"write deadline moved earlier while blocked", blockWrite, (*Stream).SetWriteDeadline, hour, 30 * time.Millisecond},
		{"read deadline moved later while blocked", blockRead, (*Stream).SetReadDeadline, 500 * time.Millisecond, 700 * time.Millisecond},
		{"write deadline moved later while blocked", blockWrite, (*Stream).SetWriteDeadline, 500 * time.Millisecond, 700 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The bubble's clock is held: the call returns at its
			// deadline exactly, and waiting costs no real time.
			synctest.Test(t, func(t *testing.T) {
				cs, _, _, _ := tstPipeStreamPair(t, DefaultConfig())
				deadline := time.Now().Add(tc.first)
				_ = tc.set(cs, deadline)
				blocked := tc.block(cs)
				if tc.move != 0 {
					tstNotWithin(t, blocked, 50*time.Millisecond, "a call whose deadline is "+tc.first.String()+" away")
					deadline = time.Now().Add(tc.move)
					_ = tc.set(cs, deadline)
				}
				err := tstRecv(t, blocked, "the blocked call to time out")
				now := time.Now()
				if now.Before(deadline) {
					t.Errorf("the call returned %s before its deadline", deadline.Sub(now))
				}
				if tc.first > 0 && !now.Equal(deadline) {
					t.Errorf("the call returned %s after its deadline", now.Sub(deadline))
				}
				tstIsTimeout(t, err, tc.name)
			})
		})
	}
}

func TestDeadlineClearedWhileBlocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs, ss, _, _ := tstPipeStreamPair(t, DefaultConfig())
		_ = cs.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		got := make(chan []byte, 1)
		readErr := tstCall(func() error {
			b := make([]byte, 5)
			n, err := cs.Read(b)
			got <- b[:n]
			return err
		})
		_ = cs.SetReadDeadline(time.Time{})
		tstNotWithin(t, readErr, 300*time.Millisecond, "Read after its deadline was cleared")
		if _, err := ss.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := tstRecv(t, readErr, "Read to return the data"); err != nil {
			t.Fatalf("Read: %v", err)
		}
		if b := <-got; string(b) != "hello" {
			t.Fatalf("Read %q, want %q", b, "hello")
		}
	})
}

// TestDeadlineTimeoutIsNotFatal: after a timeout the stream works again
// once the deadline is moved, as with net.Conn.
func TestDeadlineTimeoutIsNotFatal(t *testing.T) {
	cs, ss, _, _ := tstStreamPair(t, DefaultConfig())
	credit := int(DefaultConfig().InitialStreamWindow)
	_ = cs.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := cs.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v; want a timeout", err)
	}
	// Still expired: fails again at once.
	if _, err := cs.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second Read with the deadline passed: %v; want a timeout", err)
	}
	_ = cs.SetReadDeadline(time.Now().Add(tstTimeout))
	if _, err := ss.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(cs, b); err != nil || string(b) != "ok" {
		t.Fatalf("Read after moving the deadline: %q, %v", b, err)
	}

	// The same for Write: a timed-out Write leaves the stream usable.
	_ = cs.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := cs.Write(make([]byte, 2*credit))
	tstIsTimeout(t, err, "Write beyond the credit")
	if n > credit {
		t.Fatalf("Write reported %d bytes written with only %d of credit", n, credit)
	}
	_ = cs.SetWriteDeadline(time.Time{})
	_ = ss.SetReadDeadline(time.Now().Add(tstTimeout))
	// The peer reads what was sent; the writer gets credit back and can
	// write again.
	if _, err := io.ReadFull(ss, make([]byte, n)); err != nil {
		t.Fatalf("peer reading the %d bytes of the timed-out Write: %v", n, err)
	}
	sent := tstCall(func() error { _, err := cs.Write([]byte("after")); return err })
	b = make([]byte, 5)
	if _, err := io.ReadFull(ss, b); err != nil || string(b) != "after" {
		t.Fatalf("peer reading after the timed-out Write: %q, %v", b, err)
	}
	if err := tstRecv(t, sent, "Write after a timeout"); err != nil {
		t.Fatalf("Write after the deadline was cleared: %v", err)
	}
}

// TestConcurrentWritesStayWhole: Writes from several goroutines on one
// stream each arrive in one piece, never interleaved with another's bytes.
func TestConcurrentWritesStayWhole(t *testing.T) {
	const writers, writes, size = 4, 20, 100 << 10 // several frames per Write
	cs, ss, _, _ := tstStreamPair(t, DefaultConfig())
	_ = ss.SetReadDeadline(time.Now().Add(tstTimeout))
	read := make(chan []byte, 1)
	readErr := tstCall(func() error {
		b, err := io.ReadAll(ss)
		read <- b
		return err
	})
	done := make(chan error, writers)
	for w := range writers {
		go func() {
			// Each Write is size bytes of the writer's own mark.
			msg := bytes.Repeat([]byte{byte('A' + w)}, size)
			for range writes {
				if _, err := cs.Write(msg); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range writers {
		if err := tstRecv(t, done, "the writers"); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if err := cs.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := tstRecv(t, readErr, "the reader"); err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	got := <-read
	if len(got) != writers*writes*size {
		t.Fatalf("read %d bytes, want %d", len(got), writers*writes*size)
	}
	for off := 0; off < len(got); off += size {
		run := got[off : off+size]
		if bytes.Count(run, run[:1]) != size {
			t.Fatalf("bytes %d..%d mix writers: one Write was interleaved with another", off, off+size)
		}
	}
}

// A Write of several frames' worth goes out as DATA frames no larger than
// MaxFramePayload, in order, whether it is written through or queued.
func TestWriteSplitsIntoFrames(t *testing.T) {
	for _, payload := range []int{1024, 4096, DefaultMaxFramePayload} {
		t.Run(fmt.Sprint(payload), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.MaxFramePayload = payload
			sess, raw := tstRawPair(t, true, cfg)
			st, err := sess.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := 3*payload + payload/2 // within the initial stream window
			if _, err := st.Write(make([]byte, want)); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got := 0
			for got < want {
				h := raw.waitFrame(t, "the stream's DATA", func(h frame.Header) bool {
					return h.Type == frame.TypeData && h.StreamID == st.ID()
				})
				if int(h.Length) > payload {
					t.Fatalf("a DATA frame of %d bytes; MaxFramePayload is %d", h.Length, payload)
				}
				got += int(h.Length)
			}
			if got != want {
				t.Fatalf("the peer received %d bytes, want %d", got, want)
			}
		})
	}
}
