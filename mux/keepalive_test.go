package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// TestSilenceLeft: the time a peer may still stay silent is the timeout
// less the silence so far, whenever the check runs.
func TestSilenceLeft(t *testing.T) {
	const timeout = 30 * time.Second
	for _, tc := range []struct {
		heard, now, want time.Duration
	}{
		{0, 0, timeout},
		{0, 10 * time.Second, 20 * time.Second},
		{25 * time.Second, 30 * time.Second, 25 * time.Second},
		{5 * time.Second, 35 * time.Second, 0},
		{5 * time.Second, 36 * time.Second, -time.Second},
	} {
		if got := silenceLeft(tc.heard, tc.now, timeout); got != tc.want {
			t.Errorf("silenceLeft(heard %s, now %s) = %s, want %s", tc.heard, tc.now, got, tc.want)
		}
	}
}

// TestKeepAliveOnTime: a silent peer is noticed at the timeout, not at the
// next ping tick after it. With a 2 s interval and a 2.5 s timeout, a check
// on the ticks would end the session at 4 s. The clock is the bubble's:
// the session ends at the timeout to the nanosecond, with no real wait.
func TestKeepAliveOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.KeepAliveInterval = 2 * time.Second
		cfg.KeepAliveTimeout = 2500 * time.Millisecond
		sess, raw := tstPipeRawPair(t, true, cfg)
		start := time.Now()
		raw.send(t, frame.AppendPreface(nil))
		err := tstWaitDone(t, sess, "the peer went silent")
		took := time.Since(start)
		if !errors.Is(err, ErrKeepAliveTimeout) {
			t.Fatalf("Session.Err() = %v; want ErrKeepAliveTimeout", err)
		}
		if took < cfg.KeepAliveTimeout {
			t.Errorf("the session ended after %s, before the timeout of %s", took, cfg.KeepAliveTimeout)
		}
		if limit := 2*cfg.KeepAliveInterval - 500*time.Millisecond; took > limit {
			t.Errorf("the silent peer was noticed after %s; the timeout is %s, and a check on the ping ticks would take %s", took, cfg.KeepAliveTimeout, 2*cfg.KeepAliveInterval)
		}
		if took != cfg.KeepAliveTimeout {
			t.Errorf("the session ended after %s of silence; with the clock held it must end at the timeout, %s", took, cfg.KeepAliveTimeout)
		}
	})
}

// TestKeepAliveSilenceCountsFromLastBytes: the timeout counts from the
// last bytes that arrived, whatever they were, not from the session's
// start or the last ping: a peer heard from now and then lives on, and
// dies exactly one timeout after it last spoke.
func TestKeepAliveSilenceCountsFromLastBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.KeepAliveInterval = time.Second
		cfg.KeepAliveTimeout = 3 * time.Second
		sess, raw := tstPipeRawPair(t, true, cfg)
		raw.send(t, frame.AppendPreface(nil))
		// Every 2.5 s a WINDOW_UPDATE for the session, then nothing.
		var last time.Time
		for range 4 {
			tstAdvance(2500 * time.Millisecond)
			raw.send(t, frame.AppendWindowUpdate(nil, 0, 1))
			last = time.Now()
			if err := sess.Err(); err != nil {
				t.Fatalf("a peer heard every 2.5 s with a 3 s timeout was given up: %v", err)
			}
		}
		err := tstWaitDone(t, sess, "the peer went silent")
		if !errors.Is(err, ErrKeepAliveTimeout) {
			t.Fatalf("Session.Err() = %v; want ErrKeepAliveTimeout", err)
		}
		if took := time.Since(last); took != cfg.KeepAliveTimeout {
			t.Errorf("the session ended %s after the peer last spoke; want the timeout, %s", took, cfg.KeepAliveTimeout)
		}
	})
}

// tstCutLink relays between two in-memory connections until cut is
// called; from then on it reads and drops everything, in both directions,
// and closes nothing: a link that died without telling either end.
func tstCutLink(t *testing.T) (a, b net.Conn, cut func()) {
	t.Helper()
	a, aPeer := net.Pipe()
	b, bPeer := net.Pipe()
	var dead atomic.Bool
	var wg sync.WaitGroup
	relay := func(dst, src net.Conn) {
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && !dead.Load() {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(2)
	go relay(bPeer, aPeer)
	go relay(aPeer, bPeer)
	t.Cleanup(func() {
		for _, c := range []net.Conn{a, b, aPeer, bPeer} {
			c.Close()
		}
		wg.Wait()
	})
	return a, b, func() { dead.Store(true) }
}

// TestKeepAliveCutLinkBothEnds: when the link between two sessions dies
// silently, both ends notice within their timeout, however much data was
// moving before.
func TestKeepAliveCutLinkBothEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, cut := tstCutLink(t)
		cfg := DefaultConfig()
		cfg.KeepAliveInterval = 100 * time.Millisecond
		cfg.KeepAliveTimeout = time.Second
		c, s := tstSessions(t, a, b, cfg, cfg)
		// The link is cut while data moves: once the server has read
		// 1 MiB. In the bubble no time passes while data flows, so the cut
		// comes from the reader itself rather than from a poll.
		cutAt := make(chan time.Time, 1)
		tstServe(t, s, func(st *Stream) {
			_, _ = io.Copy(&tstTrip{after: 1 << 20, f: func() {
				cut()
				cutAt <- time.Now()
			}}, st)
		})
		st, err := c.OpenStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pumping := tstCall(func() error {
			_, err := io.Copy(st, &tstRepeatReader{left: 1 << 30})
			return err
		})
		start := tstRecv(t, cutAt, "1 MiB to flow before the cut")
		for _, end := range []struct {
			name string
			s    *Session
		}{{"client", c}, {"server", s}} {
			err := tstWaitDone(t, end.s, "the link was cut")
			took := time.Since(start)
			if !errors.Is(err, ErrKeepAliveTimeout) {
				t.Errorf("%s: Err() = %v; want ErrKeepAliveTimeout", end.name, err)
			}
			// Bytes in flight when the link was cut may still arrive just
			// after: the timeout counts from the last of them.
			if limit := cfg.KeepAliveTimeout + time.Second; took > limit {
				t.Errorf("%s noticed the cut after %s; the timeout is %s", end.name, took, cfg.KeepAliveTimeout)
			}
			if took < cfg.KeepAliveTimeout-cfg.KeepAliveInterval {
				t.Errorf("%s gave up %s after the cut, before the timeout of %s", end.name, took, cfg.KeepAliveTimeout)
			}
		}
		_ = tstRecv(t, pumping, "the writer to return after the session ended")
	})
}

// tstTrip is a writer that discards what it is given and calls f once,
// when more than after bytes have passed.
type tstTrip struct {
	n, after int
	f        func()
}

func (w *tstTrip) Write(p []byte) (int, error) {
	w.n += len(p)
	if w.f != nil && w.n > w.after {
		f := w.f
		w.f = nil
		f()
	}
	return len(p), nil
}

// TestRTTOverDelayLink: a Ping over a link with 25 ms each way measures
// the 50 ms round trip, to the microsecond the PING carries, and so do
// the start-up probes that window tuning works from.
func TestRTTOverDelayLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const oneWay = 25 * time.Millisecond
		a, b := tstPipeDelayLink(t, oneWay)
		c, s := tstSessions(t, a, b, DefaultConfig(), DefaultConfig())
		rtt, err := c.Ping(context.Background())
		if err != nil {
			t.Fatalf("Ping: %v", err)
		}
		if rtt != 2*oneWay {
			t.Errorf("Ping over a link of %s each way = %s; want %s", oneWay, rtt, 2*oneWay)
		}
		tstAdvance(time.Second) // the start-up probes are answered
		for _, x := range []struct {
			name string
			s    *Session
		}{{"client", c}, {"server", s}} {
			if got := x.s.RTT(); got != 2*oneWay {
				t.Errorf("%s RTT() = %s; want %s", x.name, got, 2*oneWay)
			}
			if got := x.s.tuningRTT(); got != 2*oneWay {
				t.Errorf("%s tunes windows on a round trip of %s; want %s", x.name, got, 2*oneWay)
			}
		}
	})
}

// TestStartupProbesTuneOnSmallestRTT: a session sends five PINGs one
// after another at start; each answer sets RTT, and window tuning takes
// the smallest sample but the first, which also timed the peer's own
// start-up. A late answer (queueing) shows in the link's queue for four
// round trips, then no more; a queue-timing PING goes with stream credit
// at most once per round trip. The raw peer answers after delays the test
// chooses, on the bubble's clock.
func TestStartupProbesTuneOnSmallestRTT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.KeepAliveInterval = -1 // only the start-up probes ping
		sess, raw := tstPipeRawPair(t, true, cfg)
		raw.send(t, frame.AppendPreface(nil))
		isPing := func(h frame.Header) bool { return h.Type == frame.TypePing }
		for i, p := range []struct{ delay, tuning time.Duration }{
			{80 * time.Millisecond, 0}, // not used for tuning
			{30 * time.Millisecond, 30 * time.Millisecond},
			{20 * time.Millisecond, 20 * time.Millisecond},
			{40 * time.Millisecond, 20 * time.Millisecond},
			{25 * time.Millisecond, 20 * time.Millisecond},
		} {
			h := raw.waitFrame(t, fmt.Sprintf("start-up probe %d", i+1), isPing)
			tstAdvance(p.delay)
			raw.send(t, frame.AppendPing(nil, true, h.Value))
			synctest.Wait()
			if got := sess.RTT(); got != p.delay {
				t.Errorf("probe %d answered after %s: RTT() = %s", i+1, p.delay, got)
			}
			if got := sess.tuningRTT(); got != p.tuning {
				t.Errorf("after probe %d: tuning RTT %s, want %s", i+1, got, p.tuning)
			}
		}
		// The last answer came 5 ms later than the smallest: queueing, for
		// four smallest round trips (80 ms) from when it was measured.
		if q := sess.link(sess.now()).queue; q != 5*time.Millisecond {
			t.Errorf("queue right after the last probe: %s, want 5ms", q)
		}
		tstAdvance(80 * time.Millisecond)
		if q := sess.link(sess.now()).queue; q != 5*time.Millisecond {
			t.Errorf("queue four round trips after the last probe: %s, want 5ms", q)
		}
		tstAdvance(time.Millisecond)
		if q := sess.link(sess.now()).queue; q != 0 {
			t.Errorf("queue more than four round trips after the last probe: %s, want 0 (the sample is stale)", q)
		}
		// No sixth probe follows the fifth.
		tstAdvance(time.Second)
		for len(raw.frames) > 0 {
			if h := <-raw.frames; isPing(h) {
				t.Errorf("a PING (%v) after the five start-up probes, with keepalive off", h)
			}
		}
		// Queue-timing PINGs: at most one per smallest round trip.
		if sess.probeDue() == 0 {
			t.Errorf("no queue-timing PING due a second after the last one")
		}
		if sess.probeDue() != 0 {
			t.Errorf("a second queue-timing PING due at the same instant")
		}
		tstAdvance(20*time.Millisecond - time.Microsecond)
		if sess.probeDue() != 0 {
			t.Errorf("a queue-timing PING due within one round trip of the last")
		}
		tstAdvance(time.Microsecond)
		if sess.probeDue() == 0 {
			t.Errorf("no queue-timing PING due one round trip after the last")
		}
	})
}
