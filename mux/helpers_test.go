package mux

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// Helpers for the behaviour tests. Every name starts with tst so that it
// cannot collide with helpers of the benchmark files in this package.

// tstTimeout bounds every wait in the tests: long enough for -race on a
// loaded two-core machine, short enough that a hang fails fast.
const tstTimeout = 10 * time.Second

// tstPair is sessionPair with a configuration per side.
func tstPair(t testing.TB, clientCfg, serverCfg Config) (*Session, *Session) {
	t.Helper()
	a, b := tcpPair(t)
	return tstSessions(t, a, b, clientCfg, serverCfg)
}

// tstSessions starts a client session over a and a server session over b,
// both closed at cleanup. Every session pair in the tests comes from here.
func tstSessions(t testing.TB, a, b net.Conn, clientCfg, serverCfg Config) (*Session, *Session) {
	t.Helper()
	c, err := Client(a, clientCfg)
	if err != nil {
		a.Close()
		b.Close()
		t.Fatalf("Client: %v", err)
	}
	s, err := Server(b, serverCfg)
	if err != nil {
		c.Close()
		b.Close()
		t.Fatalf("Server: %v", err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// tstPipePair is tstPair over net.Pipe: connections in memory, with no
// socket, which a testing/synctest bubble can hold. Inside a bubble every
// goroutine of both sessions then waits on channels and timers only, so
// the bubble's clock jumps ahead whenever all of them wait: keepalive and
// RTT rules are tested in virtual time, with no real sleep.
func tstPipePair(t testing.TB, clientCfg, serverCfg Config) (*Session, *Session) {
	t.Helper()
	a, b := net.Pipe()
	return tstSessions(t, a, b, clientCfg, serverCfg)
}

// tstAdvance moves a synctest bubble's clock on by d, then waits until
// every other goroutine of the bubble is blocked again: whatever the
// sessions do in that time is done when it returns. Only inside a bubble.
func tstAdvance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// tstPipeRawPair is tstRawPair over net.Pipe (see tstPipePair).
func tstPipeRawPair(t testing.TB, sessionIsClient bool, cfg Config) (*Session, *tstRawPeer) {
	t.Helper()
	a, b := net.Pipe()
	return tstRawPairOver(t, a, b, sessionIsClient, cfg, true)
}

// tstWindow is a stream's current receive window.
func tstWindow(st *Stream) int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.inflow.window
}

// tstServe accepts every stream s's peer opens and runs handle on it in a
// goroutine of its own. At cleanup the session is closed first, which
// unblocks every handler, and then the handlers are waited for.
func tstServe(t testing.TB, s *Session, handle func(*Stream)) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			st, err := s.AcceptStream(context.Background())
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(st)
			}()
		}
	}()
	t.Cleanup(func() {
		s.Close()
		wg.Wait()
	})
}

// tstEcho copies a stream back to its sender and half-closes when the
// sender has.
func tstEcho(st *Stream) {
	_, _ = io.Copy(st, st)
	_ = st.CloseWrite()
	_ = st.Close()
}

// tstEventually polls cond until it holds or tstTimeout passes.
func tstEventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(tstTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", tstTimeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// tstRecv waits for one value from ch, failing the test after tstTimeout.
func tstRecv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(tstTimeout):
		t.Fatalf("timed out after %s waiting for %s", tstTimeout, what)
		panic("unreachable")
	}
}

// tstNotWithin asserts that ch yields nothing for d: the call behind it is
// blocked, as it should be.
func tstNotWithin[T any](t testing.TB, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s returned (%v) but should still be blocked", what, v)
	case <-time.After(d):
	}
}

// tstCall runs f in a goroutine and delivers its error on the returned
// channel, so a test can check that a blocking call is blocked and later
// that it returned.
func tstCall(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// tstRawPeer is the far end of a session driven by hand: the test writes
// raw bytes to conn, and a goroutine reads and decodes everything the
// session sends, so the session never blocks on a full socket.
type tstRawPeer struct {
	conn      net.Conn
	frames    chan frame.Header // every frame received; dropped if nobody looks
	sawGoAway atomic.Bool
	goAway    atomic.Uint32 // code of the first GOAWAY
	done      chan struct{} // closed when the reading goroutine ends
	first     []byte        // the first bytes the session sent (up to a preface's worth); read after done
	readErr   error         // why it ended; read after done
}

// tstRawPair connects a Session (client or server side) to a raw peer.
func tstRawPair(t testing.TB, sessionIsClient bool, cfg Config) (*Session, *tstRawPeer) {
	t.Helper()
	return tstRawPairReading(t, sessionIsClient, cfg, true)
}

// tstRawPairReading is tstRawPair with a raw peer that, unless read is
// set, never reads: the session's writes pile up in the socket buffers.
func tstRawPairReading(t testing.TB, sessionIsClient bool, cfg Config, read bool) (*Session, *tstRawPeer) {
	t.Helper()
	a, b := tcpPair(t)
	return tstRawPairOver(t, a, b, sessionIsClient, cfg, read)
}

// tstRawPairOver is tstRawPairReading over given connections: the session
// runs over a, the raw peer over b.
func tstRawPairOver(t testing.TB, a, b net.Conn, sessionIsClient bool, cfg Config, read bool) (*Session, *tstRawPeer) {
	t.Helper()
	var sess *Session
	var err error
	if sessionIsClient {
		sess, err = Client(a, cfg)
	} else {
		sess, err = Server(a, cfg)
	}
	if err != nil {
		a.Close()
		b.Close()
		t.Fatalf("starting the session: %v", err)
	}
	p := &tstRawPeer{conn: b, frames: make(chan frame.Header, 4096), done: make(chan struct{})}
	if read {
		go p.readLoop()
	} else {
		close(p.done)
	}
	t.Cleanup(func() {
		sess.Close()
		p.conn.Close()
		<-p.done
	})
	return sess, p
}

func (p *tstRawPeer) readLoop() {
	defer close(p.done)
	fr := frame.NewReader(&tstRecorder{r: p.conn, into: &p.first}, 64<<10)
	if err := fr.ReadPreface(); err != nil {
		p.readErr = err
		return
	}
	for {
		h, err := fr.Next()
		if err != nil {
			p.readErr = err
			return
		}
		if h.Type == frame.TypeData {
			if err := fr.Discard(h); err != nil {
				p.readErr = err
				return
			}
		}
		if h.Type == frame.TypeGoAway && !p.sawGoAway.Load() {
			p.goAway.Store(uint32(h.Value))
			p.sawGoAway.Store(true)
		}
		select {
		case p.frames <- h:
		default:
		}
	}
}

// send writes raw bytes to the session.
func (p *tstRawPeer) send(t testing.TB, b []byte) {
	t.Helper()
	_ = p.conn.SetWriteDeadline(time.Now().Add(tstTimeout))
	if _, err := p.conn.Write(b); err != nil {
		t.Fatalf("raw peer: writing %d bytes: %v", len(b), err)
	}
}

// waitFrame waits for a frame matching match.
func (p *tstRawPeer) waitFrame(t testing.TB, what string, match func(frame.Header) bool) frame.Header {
	t.Helper()
	timeout := time.After(tstTimeout)
	for {
		select {
		case h := <-p.frames:
			if match(h) {
				return h
			}
		case <-p.done:
			// Frames read before the end may still be queued.
			for {
				select {
				case h := <-p.frames:
					if match(h) {
						return h
					}
				default:
					t.Fatalf("raw peer: the session closed the connection (%v) before sending %s", p.readErr, what)
				}
			}
		case <-timeout:
			t.Fatalf("raw peer: timed out after %s waiting for %s", tstTimeout, what)
		}
	}
}

// tstWaitDone waits for a session to end and returns its error.
func tstWaitDone(t testing.TB, s *Session, why string) error {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(tstTimeout):
		t.Fatalf("the session did not end within %s after %s", tstTimeout, why)
	}
	err := s.Err()
	if err == nil {
		t.Fatalf("the session ended after %s but Err() is nil", why)
	}
	if !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("after %s, Session.Err() = %v; it should match ErrSessionClosed", why, err)
	}
	return err
}

// tstRoundTrip checks that a session pair still works: one stream, a
// message and its echo.
func tstRoundTrip(t testing.TB, c *Session, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tstTimeout)
	defer cancel()
	st, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatalf("healthy session: OpenStream: %v", err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(tstTimeout))
	if _, err := io.WriteString(st, msg); err != nil {
		t.Fatalf("healthy session: Write: %v", err)
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatalf("healthy session: CloseWrite: %v", err)
	}
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatalf("healthy session: reading the echo: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("healthy session: echo is %q, want %q", got, msg)
	}
}

// tstRecorder keeps the first frame.PrefaceSize bytes read through it.
type tstRecorder struct {
	r    io.Reader
	into *[]byte
}

func (r *tstRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if k := min(n, frame.PrefaceSize-len(*r.into)); k > 0 {
		*r.into = append(*r.into, p[:k]...)
	}
	return n, err
}
