package mux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice/frame"
	"go.uber.org/goleak"
)

// tstBlockedCalls starts one of every call that can block on sess, with a
// raw peer that reads everything and answers nothing: a Read with nothing
// to read, a Write out of stream credit, a Write out of session credit, an
// AcceptStream, a Ping. It returns them by name once each is seen blocked.
func tstBlockedCalls(t *testing.T, sess *Session, raw *tstRawPeer) map[string]<-chan error {
	t.Helper()
	ctx := context.Background()
	open := func() *Stream {
		st, err := sess.OpenStream(ctx)
		if err != nil {
			t.Fatalf("OpenStream: %v", err)
		}
		return st
	}
	reader, writer, sessionWriter := open(), open(), open()
	// Stream credit without end for sessionWriter, so that only the
	// session window stops it.
	raw.send(t, frame.AppendWindowUpdate(nil, sessionWriter.ID(), frame.MaxWindow-frame.InitialStreamWindow))
	sessionPayload := make([]byte, frame.InitialSessionWindow+1)
	calls := map[string]<-chan error{
		"Read": tstCall(func() error { _, err := reader.Read(make([]byte, 1)); return err }),
		"Write out of stream credit": tstCall(func() error {
			_, err := writer.Write(make([]byte, 1<<20))
			return err
		}),
		"Write out of session credit": tstCall(func() error {
			_, err := sessionWriter.Write(sessionPayload)
			return err
		}),
		"AcceptStream": tstCall(func() error { _, err := sess.AcceptStream(ctx); return err }),
		"Ping":         tstCall(func() error { _, err := sess.Ping(ctx); return err }),
	}
	// The session-credit writer must have used up the whole window but
	// the reserve a large write leaves to small ones.
	tstEventually(t, "the session credit to run out", func() bool { return sess.Stats().SendCredit == creditReserve })
	for name, ch := range calls {
		tstNotWithin(t, ch, 20*time.Millisecond, name)
	}
	return calls
}

// TestConnectionLossUnblocksEverything: however the connection dies, every
// blocked call returns an error matching ErrSessionClosed, later calls fail
// at once, and no goroutine survives.
func TestConnectionLossUnblocksEverything(t *testing.T) {
	tests := []struct {
		name  string
		kill  func(sess *Session, raw *tstRawPeer)
		cause error // what Session.Err must also match, if not nil
	}{
		{"the peer hangs up", func(_ *Session, raw *tstRawPeer) { raw.conn.Close() }, nil},
		{"the peer half-closes", func(_ *Session, raw *tstRawPeer) { raw.conn.(*net.TCPConn).CloseWrite() }, nil},
		{"the connection is closed under the session", func(sess *Session, _ *tstRawPeer) { sess.conn.Close() }, nil},
		{"Session.Close", func(sess *Session, _ *tstRawPeer) { sess.Close() }, nil},
		{"the peer sends GOAWAY(INTERNAL_ERROR) and hangs up", func(_ *Session, raw *tstRawPeer) {
			_, _ = raw.conn.Write(frame.AppendGoAway(nil, frame.CodeInternal))
			raw.conn.Close()
		}, &RemoteError{Code: frame.CodeInternal}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sess, raw := tstRawPair(t, true, DefaultConfig())
			raw.send(t, tstPreface)
			calls := tstBlockedCalls(t, sess, raw)
			tc.kill(sess, raw)
			for name, ch := range calls {
				err := tstRecv(t, ch, name+" to return after the connection died")
				if !errors.Is(err, ErrSessionClosed) {
					t.Errorf("blocked %s returned %v; want an error matching ErrSessionClosed", name, err)
				}
			}
			err := tstWaitDone(t, sess, tc.name)
			if tc.cause != nil {
				var re *RemoteError
				if !errors.As(err, &re) || re.Code != tc.cause.(*RemoteError).Code {
					t.Errorf("Session.Err() = %v; want it to carry %v", err, tc.cause)
				}
			}
			// Calls made now fail at once.
			if _, err := sess.OpenStream(context.Background()); !errors.Is(err, ErrSessionClosed) {
				t.Errorf("OpenStream after the end: %v; want ErrSessionClosed", err)
			}
			if _, err := sess.AcceptStream(context.Background()); !errors.Is(err, ErrSessionClosed) {
				t.Errorf("AcceptStream after the end: %v; want ErrSessionClosed", err)
			}
			if _, err := sess.Ping(context.Background()); !errors.Is(err, ErrSessionClosed) {
				t.Errorf("Ping after the end: %v; want ErrSessionClosed", err)
			}
			if err := sess.Close(); err != nil {
				t.Errorf("Close after the end: %v", err)
			}
			raw.conn.Close()
			<-raw.done
			goleak.VerifyNone(t)
		})
	}
}

// TestConnectionLossMidTransfer: two real sessions move data both ways on
// several streams when the connection under one of them is cut. Every call
// on both sides returns, both sessions end, no goroutine survives.
func TestConnectionLossMidTransfer(t *testing.T) {
	for _, cut := range []string{"client", "server"} {
		t.Run("cut under the "+cut, func(t *testing.T) {
			a, b := tcpPair(t)
			c, s := tstSessions(t, a, b, DefaultConfig(), DefaultConfig())
			var wg sync.WaitGroup
			var moved sync.WaitGroup // each client stream has read some data
			// Each stream end writes without end and reads without end
			// until the session dies.
			pump := func(st *Stream, mv *sync.WaitGroup) {
				wg.Add(2)
				mv.Add(1)
				go func() {
					defer wg.Done()
					for {
						if _, err := st.Write(tstPool[:32<<10]); err != nil {
							return
						}
					}
				}()
				go func() {
					defer wg.Done()
					buf := make([]byte, 32<<10)
					total, signalled := 0, false
					for {
						n, err := st.Read(buf)
						total += n
						if total > 256<<10 && !signalled {
							mv.Done()
							signalled = true
						}
						if err != nil {
							if !signalled {
								mv.Done()
							}
							return
						}
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					st, err := s.AcceptStream(context.Background())
					if err != nil {
						return
					}
					pump(st, new(sync.WaitGroup))
				}
			}()
			for range 4 {
				st, err := c.OpenStream(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				pump(st, &moved)
			}
			done := make(chan struct{})
			go func() { moved.Wait(); close(done) }()
			tstRecv(t, done, "every stream to move data both ways")

			if cut == "client" {
				a.Close()
			} else {
				b.Close()
			}
			for _, x := range []struct {
				name string
				s    *Session
			}{{"client", c}, {"server", s}} {
				tstWaitDone(t, x.s, "the connection was cut under the "+cut)
			}
			finished := make(chan struct{})
			go func() { wg.Wait(); close(finished) }()
			tstRecv(t, finished, "every Read, Write and Accept to return")
			c.Close()
			s.Close()
			goleak.VerifyNone(t)
		})
	}
}

// TestCloseWithWriterStuck: the peer stops reading the connection, so the
// session's writer blocks in a system call; Close still returns and every
// call ends.
func TestCloseWithWriterStuck(t *testing.T) {
	sess, raw := tstRawPairReading(t, true, DefaultConfig(), false)
	st := tstStuckWriter(t, sess, raw)
	written := tstCall(func() error {
		for {
			if _, err := st.Write(tstPool[:1<<20]); err != nil {
				return err
			}
		}
	})
	tstNotWithin(t, written, 100*time.Millisecond, "Write to a peer that does not read")
	closed := tstCall(func() error { return sess.Close() })
	if err := tstRecv(t, closed, "Close with the writer stuck in a system call"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tstRecv(t, written, "the blocked Write to return"); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("blocked Write after Close: %v; want ErrSessionClosed", err)
	}
}

// TestWriteTimeoutEndsSession: a connection write blocked for WriteTimeout
// ends the session.
func TestWriteTimeoutEndsSession(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WriteTimeout = 200 * time.Millisecond
	sess, raw := tstRawPairReading(t, true, cfg, false)
	st := tstStuckWriter(t, sess, raw)
	written := tstCall(func() error {
		for {
			if _, err := st.Write(tstPool[:1<<20]); err != nil {
				return err
			}
		}
	})
	err := tstWaitDone(t, sess, "a connection write stayed blocked past WriteTimeout")
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Session.Err() = %v; want it to carry the write's timeout (os.ErrDeadlineExceeded)", err)
	}
	if err := tstRecv(t, written, "the blocked Write to return"); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("blocked Write after the write timeout: %v; want ErrSessionClosed", err)
	}
}

// tstStuckWriter opens a stream with credit without end: the raw peer
// grants it and the session all the credit there is, and then never reads.
func tstStuckWriter(t *testing.T, sess *Session, raw *tstRawPeer) *Stream {
	t.Helper()
	st, err := sess.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	raw.send(t, tstCat(tstPreface,
		frame.AppendWindowUpdate(nil, 0, frame.MaxWindow-frame.InitialSessionWindow),
		frame.AppendWindowUpdate(nil, st.ID(), frame.MaxWindow-frame.InitialStreamWindow),
	))
	return st
}

// tstBreakingConn fails its next Read that returns data once broken,
// the way a TLS connection fails on a record that does not decrypt.
type tstBreakingConn struct {
	net.Conn
	broken atomic.Bool
}

var errTstBadRecord = errors.New("bad record MAC")

func (c *tstBreakingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.broken.Load() {
		return 0, errTstBadRecord
	}
	return n, err
}

// TestReadFailureTellsPeer: when reading fails on this side, the session
// ends with that error and the peer gets GOAWAY(INTERNAL_ERROR): the fault
// is here, not in what the peer sent.
func TestReadFailureTellsPeer(t *testing.T) {
	a, b := tcpPair(t)
	bc := &tstBreakingConn{Conn: a}
	sess, raw := tstRawPairOver(t, bc, b, true, DefaultConfig(), true)
	raw.send(t, frame.AppendPreface(nil))
	raw.waitFrame(t, "the first PING", func(h frame.Header) bool { return h.Type == frame.TypePing })
	bc.broken.Store(true)
	raw.send(t, frame.AppendPing(nil, false, 1))
	err := tstWaitDone(t, sess, "reading failed")
	if !errors.Is(err, errTstBadRecord) {
		t.Fatalf("Session.Err() = %v; want it to wrap the read error", err)
	}
	h := raw.waitFrame(t, "GOAWAY", func(h frame.Header) bool { return h.Type == frame.TypeGoAway })
	if frame.Code(h.Value) != frame.CodeInternal {
		t.Fatalf("GOAWAY code %s; want INTERNAL_ERROR", frame.Code(h.Value))
	}
}

// TestCloseGoAwayAfterBatchInFlight: Close in the middle of a bulk write
// queues the GOAWAY behind the batch on the wire: the peer reads
// well-formed frames up to the GOAWAY, and then the end of the connection.
// Close comes once the peer has read a given number of bytes, most of them
// in the middle of a frame. (The bubble holds the clock; no goroutine
// waits on a lock for time to pass, which a bubble cannot advance.)
func TestCloseGoAwayAfterBatchInFlight(t *testing.T) {
	for _, after := range []int{1, 100 << 10, 1<<20 + 5} {
		t.Run(fmt.Sprint(after), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b := net.Pipe()
				reached := make(chan struct{})
				far := &tstReadTrip{Conn: b, after: after, reached: reached}
				sess, raw := tstRawPairOver(t, a, far, true, DefaultConfig(), true)
				st := tstStuckWriter(t, sess, raw)
				written := tstCall(func() error {
					for {
						if _, err := st.Write(tstPool[:1<<20]); err != nil {
							return err
						}
					}
				})
				tstRecv(t, reached, fmt.Sprintf("the peer to read %d bytes", after))
				if err := sess.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				_ = tstRecv(t, written, "the Write to return after Close")
				<-raw.done
				var fe *frame.Error
				if errors.As(raw.readErr, &fe) {
					t.Fatalf("the peer read a malformed stream of frames: %v", raw.readErr)
				}
				if !raw.sawGoAway.Load() || frame.Code(raw.goAway.Load()) != frame.CodeNoError {
					t.Fatalf("the peer saw no GOAWAY(NO_ERROR) (GOAWAY %v, code %d; reader ended with %v)", raw.sawGoAway.Load(), raw.goAway.Load(), raw.readErr)
				}
			})
		})
	}
}

// tstReadTrip is a connection that closes reached once more than after
// bytes have been read from it.
type tstReadTrip struct {
	net.Conn
	n, after int
	reached  chan struct{}
}

func (c *tstReadTrip) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n += n
	if c.reached != nil && c.n >= c.after {
		close(c.reached)
		c.reached = nil
	}
	return n, err
}

// TestCloseAfterIdleSendsGoAway: a session idle for longer than
// WriteTimeout still tells its peer why it ends: the write deadline left
// by its last batch has long passed, and the GOAWAY must not be refused by
// it.
func TestCloseAfterIdleSendsGoAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.KeepAliveInterval = -1 // the raw peer answers no PING
		sess, raw := tstPipeRawPair(t, true, cfg)
		raw.send(t, frame.AppendPreface(nil))
		tstAdvance(2 * cfg.WriteTimeout)
		if err := sess.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		<-raw.done
		if !raw.sawGoAway.Load() || frame.Code(raw.goAway.Load()) != frame.CodeNoError {
			t.Fatalf("the peer saw no GOAWAY(NO_ERROR) after %s idle (GOAWAY %v, code %d; reader ended with %v)", 2*cfg.WriteTimeout, raw.sawGoAway.Load(), raw.goAway.Load(), raw.readErr)
		}
	})
}
