package mux

import (
	"testing"
	"time"
)

// The flow-control rules alone: a clock held by the test, no sockets.

var tstLim = windowLimits{initial: 256 << 10, max: 16 << 20}

// tstT0 is an arbitrary reading of the test clock.
const tstT0 = time.Hour

// TestRecvWindowAutoTuning drives a stream's receive window through one
// epoch per case: the reader consumes half the window after elapsed, having
// waited for data as the case says, and the window grows, stays or shrinks.
func TestRecvWindowAutoTuning(t *testing.T) {
	const rtt = 50 * time.Millisecond
	half := tstLim.initial / 2
	tests := []struct {
		name     string
		rtt      time.Duration
		elapsed  time.Duration // from the epoch's start to the consume
		reader   func(w *recvWindow, start, now time.Duration)
		buffered int64
		want     int64 // window afterwards
	}{
		{"Read: waited, woke, read within an RTT", rtt, 20 * time.Millisecond,
			func(w *recvWindow, start, now time.Duration) {
				w.startWait(start)
				w.stopWait(now)
			}, 0, 2 * tstLim.initial},
		{"WriteTo: waited between writes, most of the epoch", rtt, 40 * time.Millisecond,
			func(w *recvWindow, start, now time.Duration) {
				for at := start; at < now; at += 10 * time.Millisecond {
					w.startWait(at)
					w.stopWait(at + 8*time.Millisecond)
				}
			}, 0, 2 * tstLim.initial},
		{"sink: waiting since before the epoch and never woke", rtt, 20 * time.Millisecond,
			func(w *recvWindow, start, now time.Duration) {
				w.startWait(start - time.Second)
			}, 0, 2 * tstLim.initial},
		{"reader never waited over a quarter round trip: it, not the window, is the limit", rtt, 20 * time.Millisecond,
			func(w *recvWindow, start, now time.Duration) {}, 0, tstLim.initial},
		{"reader never waited but took half the window in under a quarter round trip", rtt, 12 * time.Millisecond,
			func(w *recvWindow, start, now time.Duration) {}, 0, 2 * tstLim.initial},
		{"reader waited under half the epoch", rtt, 40 * time.Millisecond,
			func(w *recvWindow, start, now time.Duration) {
				w.startWait(start)
				w.stopWait(start + 15*time.Millisecond)
			}, 0, tstLim.initial},
		{"half window took over two round trips", rtt, 101 * time.Millisecond,
			func(w *recvWindow, start, now time.Duration) { w.startWait(start) }, 0, tstLim.initial},
		{"RTT not measured yet", 0, 20 * time.Millisecond,
			func(w *recvWindow, start, now time.Duration) { w.startWait(start) }, 0, tstLim.initial},
		{"a burst left half the window buffered; the reader had waited for it", rtt, 50 * time.Millisecond,
			func(w *recvWindow, start, now time.Duration) {
				w.startWait(start)
				w.stopWait(now - time.Millisecond)
			}, tstLim.initial / 2, 2 * tstLim.initial},
		{"a busy reader with half the window buffered: no growth", rtt, 20 * time.Millisecond,
			func(w *recvWindow, start, now time.Duration) {}, tstLim.initial / 2, tstLim.initial},
		{"loopback RTT: the window already covers 10 Gbit/s", 50 * time.Microsecond, 20 * time.Microsecond,
			func(w *recvWindow, start, now time.Duration) { w.startWait(start) }, 0, tstLim.initial},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newRecvWindow(tstLim.initial, tstT0)
			if !w.admit(half) {
				t.Fatal("admit refused half the window")
			}
			now := tstT0 + tc.elapsed
			tc.reader(&w, tstT0, now)
			inc := w.consume(half, now, link{min: tc.rtt}, tc.buffered, false, &tstLim)
			if w.window != tc.want {
				t.Errorf("window %d, want %d", w.window, tc.want)
			}
			// The credit is what was read plus what the window grew by.
			if want := half + tc.want - tstLim.initial; inc != want {
				t.Errorf("credit %d, want %d", inc, want)
			}
			if w.inFlight != 0 || w.unacked != 0 {
				t.Errorf("after crediting: inFlight %d, unacked %d; want 0 and 0", w.inFlight, w.unacked)
			}
		})
	}
}

// TestRecvWindowGrowsToMax: a reader that keeps up over a long round trip
// doubles the window epoch after epoch, up to the maximum and no further.
func TestRecvWindowGrowsToMax(t *testing.T) {
	const rtt = 100 * time.Millisecond
	w := newRecvWindow(tstLim.initial, tstT0)
	now := tstT0
	w.startWait(now) // a WriteTo fed by the session's reader waits throughout
	for i := 0; i < 20; i++ {
		half := w.window / 2
		if !w.admit(half) {
			t.Fatalf("epoch %d: admit refused half the window", i)
		}
		now += rtt / 2
		_ = w.consume(half, now, link{min: rtt}, 0, false, &tstLim)
	}
	if w.window != tstLim.max {
		t.Fatalf("window %d after 20 fast epochs, want the maximum %d", w.window, tstLim.max)
	}
}

// TestRecvWindowShrinks: a reader that leaves half the window buffered
// shrinks a grown window about by half each epoch, crediting back less than
// it read, and never goes below the initial window.
func TestRecvWindowShrinks(t *testing.T) {
	w := newRecvWindow(tstLim.initial, tstT0)
	w.window = 4 * tstLim.initial
	now := tstT0
	for round := 0; w.window > tstLim.initial; round++ {
		if round == 5 {
			t.Fatalf("window still %d after 5 slow epochs, want the initial %d", w.window, tstLim.initial)
		}
		before := w.window
		half := before / 2
		if !w.admit(before) {
			t.Fatal("admit refused a full window")
		}
		now += time.Second
		inc := w.consume(half, now, link{min: 50 * time.Millisecond}, before-half, false, &tstLim)
		if w.window >= before || w.window < max(before/2, tstLim.initial) {
			t.Fatalf("window %d after %d with half buffered, want between %d and %d", w.window, before, max(before/2, tstLim.initial), before-1)
		}
		if shrunk := before - w.window; inc != half-shrunk {
			t.Fatalf("credit %d, want the %d read less the %d shrunk", inc, half, shrunk)
		}
		w.inFlight = 0 // the rest is read without tuning; the next epoch starts empty
	}
	if w.window != tstLim.initial {
		t.Fatalf("window %d, below the initial %d", w.window, tstLim.initial)
	}
}

// TestRecvWindowCreditsHalf: nothing goes back before half the window is
// consumed, nothing after the peer's CLOSE, and admit holds the peer to the
// window.
func TestRecvWindowCreditsHalf(t *testing.T) {
	w := newRecvWindow(tstLim.initial, tstT0)
	if !w.admit(tstLim.initial) {
		t.Fatal("admit refused exactly the window")
	}
	if w.admit(1) {
		t.Fatal("admit took a byte beyond the window")
	}
	if inc := w.consume(tstLim.initial/2-1, tstT0, link{}, 0, false, &tstLim); inc != 0 {
		t.Fatalf("credit %d before half the window was read, want 0", inc)
	}
	if inc := w.consume(1, tstT0, link{}, 0, false, &tstLim); inc != tstLim.initial/2 {
		t.Fatalf("credit %d at half the window, want %d", inc, tstLim.initial/2)
	}
	if inc := w.consume(tstLim.initial/2, tstT0, link{}, 0, true, &tstLim); inc != 0 {
		t.Fatalf("credit %d after the peer's CLOSE, want 0", inc)
	}
}

// TestSessionRecvBatchesCredit: session credit goes back a quarter window
// at a time, or at once when the peer is nearly out.
func TestSessionRecvBatchesCredit(t *testing.T) {
	f := sessionRecv{window: 1 << 20}
	if ok, _ := f.received(1 << 20); !ok {
		t.Fatal("received refused exactly the window")
	}
	if ok, _ := f.received(1); ok {
		t.Fatal("received took a byte beyond the window")
	}
	f.inFlight.Add(-1)
	// The peer is out of credit: even a small read goes back at once.
	if !f.consumed(100) {
		t.Fatal("a read with the peer out of credit was not flushed")
	}
	if got := f.take(); got != 100 {
		t.Fatalf("take %d, want 100", got)
	}
	g := sessionRecv{window: 1 << 20}
	g.received(1000)
	if g.consumed(1000) {
		t.Fatal("1000 bytes flushed with most of the window left")
	}
	g.received(256 << 10)
	if !g.consumed(256<<10 - 1000) {
		t.Fatal("a quarter window consumed and not flushed")
	}
	if got := g.take(); got != 256<<10 {
		t.Fatalf("take %d, want %d", got, 256<<10)
	}
	if g.inFlight.Load() != 1000 {
		t.Fatalf("inFlight %d after crediting, want 1000", g.inFlight.Load())
	}
}

// TestSessionSendCredit: take never goes below zero, and credit that
// arrives wakes whoever waits for it.
func TestSessionSendCredit(t *testing.T) {
	f := newSessionSend(100)
	tstTakes(t, f, []tstTake{
		{60, 0, 60, "take(60) of 100"},
		{60, 0, 40, "take(60) with 40 left"},
		{1, 0, 0, "take with none left"},
	})
	ch := f.arrival()
	select {
	case <-ch:
		t.Fatal("arrival closed before any credit arrived")
	default:
	}
	if total := f.add(10); total != 10 {
		t.Fatalf("add(10) total %d", total)
	}
	select {
	case <-ch:
	default:
		t.Fatal("arrival not closed after credit arrived")
	}
}

// TestRecvWindowPause: a pause longer than two round trips before data
// arrives starts a new epoch, so it does not count against growing; a
// shorter one (a window-limited sender waiting for credit) stays in the
// epoch, where the reader's wait through it shows the window is small.
func TestRecvWindowPause(t *testing.T) {
	const rtt = 50 * time.Millisecond
	for _, tc := range []struct {
		name  string
		pause time.Duration
		want  time.Duration // the epoch's start after the data arrives
	}{
		{"one round trip", rtt, tstT0},
		{"a long idle spell", 10 * time.Second, tstT0 + 10*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newRecvWindow(tstLim.initial, tstT0)
			if !w.admit(1000) || !w.first(1000) {
				t.Fatal("1000 bytes into an empty window are not the first data")
			}
			w.arrived(tstT0+tc.pause, rtt)
			if w.epoch != tc.want {
				t.Fatalf("epoch starts at %s, want %s", w.epoch-tstT0, tc.want-tstT0)
			}
			if w.admit(1000); w.first(1000) {
				t.Fatal("more data in flight still counts as the first")
			}
		})
	}
}

// TestRecvWindowQueueStopsGrowth: a reader that keeps up does not grow its
// window once the data waits in a queue on the way for half a round trip
// or more: the link is then the limit, and a larger window only makes the
// queue in front of other streams' small messages longer.
func TestRecvWindowQueueStopsGrowth(t *testing.T) {
	const rtt = 50 * time.Millisecond
	for _, tc := range []struct {
		queue time.Duration
		want  int64
	}{
		{0, 2 * tstLim.initial},
		{rtt/2 - time.Millisecond, 2 * tstLim.initial},
		{rtt / 2, tstLim.initial},
		{rtt, tstLim.initial},
	} {
		w := newRecvWindow(tstLim.initial, tstT0)
		half := tstLim.initial / 2
		w.admit(half)
		w.startWait(tstT0)
		now := tstT0 + rtt
		_ = w.consume(half, now, link{min: rtt, queue: tc.queue}, 0, false, &tstLim)
		if w.window != tc.want {
			t.Errorf("queue %s: window %d, want %d", tc.queue, w.window, tc.want)
		}
	}
}

// TestRecvWindowQueueShrinks: data waiting a whole round trip in a queue on
// the way halves a grown window, even for a reader that keeps up.
func TestRecvWindowQueueShrinks(t *testing.T) {
	const rtt = 50 * time.Millisecond
	w := newRecvWindow(tstLim.initial, tstT0)
	w.window = 8 * tstLim.initial
	half := w.window / 2
	w.admit(half)
	w.startWait(tstT0)
	_ = w.consume(half, tstT0+rtt, link{min: rtt, queue: rtt}, 0, false, &tstLim)
	if want := 4*tstLim.initial + 1; w.window != want {
		t.Fatalf("window %d with a round trip of queue, want about half, %d", w.window, want)
	}
}

// tstBurst delivers frames payloads of size bytes into w, every gap
// starting at start, as a path with rate size/gap spreads out a burst a
// window-limited sender sent at once. It returns when the last arrived.
func tstBurst(w *recvWindow, start time.Duration, frames int, size int64, gap, rtt time.Duration) time.Duration {
	at := start
	for i := 0; i < frames; i++ {
		at = start + time.Duration(i)*gap
		w.arrival(size, at, rtt)
	}
	return at
}

// TestRecvWindowJumpsToPathWindow: a window-limited stream whose data
// arrives at the path's rate grows in one step to twice the
// bandwidth-delay product that rate shows, not just to double, however
// far that is; doubling stays the least growth; the 10 Gbit/s bound and
// the maximum still hold; and no burst makes a stream grow that the rules
// would not let grow.
func TestRecvWindowJumpsToPathWindow(t *testing.T) {
	lim := windowLimits{initial: 256 << 10, max: 64 << 20}
	const frame = 64 << 10
	// 64 KiB every 655.36 µs is 100 MB/s.
	at100MBps := time.Duration(float64(frame) / 100e6 * float64(time.Second))
	tests := []struct {
		name       string
		rtt, gap   time.Duration
		frames     int
		size       int64 // of each payload
		lim        windowLimits
		queue      time.Duration
		wantAbout  int64 // window afterwards, within 1%
		wantExact  bool
		readerBusy bool
	}{
		{"100 MB/s at 200 ms: 2 x 20 MB", 200 * time.Millisecond, at100MBps, 4, frame, lim, 0, 40e6, false, false},
		{"100 MB/s at 50 ms: 2 x 5 MB", 50 * time.Millisecond, at100MBps, 4, frame, lim, 0, 10e6, false, false},
		{"beyond the maximum: the maximum", 200 * time.Millisecond, at100MBps, 4, frame, tstLim, 0, tstLim.max, true, false},
		// 16 KiB every 8.192 ms is 2 MB/s: 2 x 100 KB at 50 ms.
		{"2 MB/s at 50 ms: 200 KB is less than double, so double", 50 * time.Millisecond, 8192 * time.Microsecond, 4, 16 << 10, lim, 0, 2 * lim.initial, true, false},
		// 16 KiB 1 µs after the first is timed as if over 100 µs:
		// 164 MB/s at least, 2 x 8.2 MB at 50 ms.
		{"payloads read back to back: at least bytes per 100 µs", 50 * time.Millisecond, time.Microsecond, 2, 16 << 10, lim, 0, 2 * (16 << 10) * 500, false, false},
		{"a single payload says nothing of the rate, so double", 200 * time.Millisecond, time.Microsecond, 1, frame, lim, 0, 2 * lim.initial, true, false},
		{"a busy reader does not grow, burst or not", 200 * time.Millisecond, at100MBps, 4, frame, lim, 0, lim.initial, true, true},
		{"half a round trip of queue stops growth, burst or not", 200 * time.Millisecond, at100MBps, 4, frame, lim, 100 * time.Millisecond, lim.initial, true, false},
		// 1 ms: the 10 Gbit/s product is 2.5 MB; 4 GB/s (64 KiB per
		// 16 µs, over 100 µs) would ask for 8 MB.
		{"never beyond the 10 Gbit/s product", time.Millisecond, 16 * time.Microsecond, 8, frame, lim, 0, windowFor10Gbps(time.Millisecond), true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newRecvWindow(tc.lim.initial, tstT0)
			half := tc.lim.initial / 2
			if !w.admit(half) {
				t.Fatal("admit refused half the window")
			}
			if !tc.readerBusy {
				w.startWait(tstT0)
			}
			if tc.gap > tc.rtt/4 {
				t.Fatalf("frames %s apart are not one burst at %s", tc.gap, tc.rtt)
			}
			// The burst comes half a round trip into the epoch, as credit
			// takes that long to reach the sender.
			now := tstBurst(&w, tstT0+tc.rtt/2, tc.frames, tc.size, tc.gap, tc.rtt)
			inc := w.consume(half, now, link{min: tc.rtt, queue: tc.queue}, 0, false, &tc.lim)
			if tc.wantExact && w.window != tc.wantAbout {
				t.Errorf("window %d, want %d", w.window, tc.wantAbout)
			}
			if !tc.wantExact && (w.window < tc.wantAbout*99/100 || w.window > tc.wantAbout*101/100) {
				t.Errorf("window %d, want about %d", w.window, tc.wantAbout)
			}
			if want := half + w.window - tc.lim.initial; inc != want {
				t.Errorf("credit %d, want %d: what was read plus the growth", inc, want)
			}
		})
	}
}

// TestRecvWindowBurstEndsAtSilence: a silence of more than a quarter round
// trip ends a burst, so the rate is that of the latest burst alone, never
// one averaged over the pauses of a window-limited sender (which would
// read as the window's own rate).
func TestRecvWindowBurstEndsAtSilence(t *testing.T) {
	const rtt = 200 * time.Millisecond
	const frame = 64 << 10
	w := newRecvWindow(tstLim.initial, tstT0)
	// 10 MB/s, then a pause of a round trip, then 100 MB/s.
	end := tstBurst(&w, tstT0, 4, frame, 6553600*time.Nanosecond, rtt)
	slow := w.pathWindow(rtt)
	if slow < 3.9e6 || slow > 4.1e6 {
		t.Fatalf("after a 10 MB/s burst the path window is %d, want about 2 x 2 MB", slow)
	}
	tstBurst(&w, end+rtt, 4, frame, 655360*time.Nanosecond, rtt)
	if fast := w.pathWindow(rtt); fast < 39e6 || fast > 41e6 {
		t.Fatalf("after a pause and a 100 MB/s burst the path window is %d, want about 2 x 20 MB", fast)
	}
	// A silence just under a quarter round trip stays in the burst.
	w = newRecvWindow(tstLim.initial, tstT0)
	w.arrival(frame, tstT0, rtt)
	w.arrival(frame, tstT0+rtt/4, rtt)
	if w.burstBytes != frame {
		t.Fatalf("a gap of a quarter round trip ended the burst (%d bytes after its first payload, want %d)", w.burstBytes, frame)
	}
}

// TestRecvWindowGrowsToPathWindowOverEpochs: a stream over a 200 ms,
// 100 MB/s path whose reader keeps up reaches the window the path needs
// in the first epoch, where doubling would take more than six.
func TestRecvWindowGrowsToPathWindowOverEpochs(t *testing.T) {
	const rtt = 200 * time.Millisecond
	lim := windowLimits{initial: 256 << 10, max: 32 << 20}
	const frame = 64 << 10
	gap := 655360 * time.Nanosecond
	w := newRecvWindow(lim.initial, tstT0)
	w.startWait(tstT0)
	now := tstT0
	epochs := 0
	for w.window < 20e6 {
		if epochs == 2 {
			t.Fatalf("window %d after %d epochs at 100 MB/s and %s, want past the 20 MB the path holds", w.window, epochs, rtt)
		}
		half := w.window / 2
		if !w.admit(half) {
			t.Fatal("admit refused half the window")
		}
		now = tstBurst(&w, now+rtt, int(half/frame), frame, gap, rtt)
		_ = w.consume(half, now, link{min: rtt}, 0, false, &lim)
		epochs++
	}
	if w.window != lim.max {
		t.Fatalf("window %d, want the maximum %d (2 x 20 MB is beyond it)", w.window, lim.max)
	}
}

// TestRecvWindowGrownCreditsQuarter: an initial window is credited back
// at half, so WINDOW_UPDATEs stay rare where windows never grow; a grown
// one at a quarter, so three quarters of it stay in flight while credit
// travels; and a quarter of a grown window read within a round trip is
// quick enough to grow it again, within more than one not.
func TestRecvWindowGrownCreditsQuarter(t *testing.T) {
	const rtt = 50 * time.Millisecond
	w := newRecvWindow(tstLim.initial, tstT0)
	w.admit(tstLim.initial)
	if inc := w.consume(tstLim.initial/4, tstT0, link{}, 0, false, &tstLim); inc != 0 {
		t.Fatalf("the initial window credited %d after a quarter, want nothing before half", inc)
	}
	for _, tc := range []struct {
		took time.Duration
		want int64
	}{
		{rtt - time.Millisecond, 8 * tstLim.initial},
		{rtt + time.Millisecond, 4 * tstLim.initial},
	} {
		w := newRecvWindow(tstLim.initial, tstT0)
		w.window = 4 * tstLim.initial
		quarter := w.window / 4
		w.admit(w.window)
		w.startWait(tstT0)
		if inc := w.consume(quarter-1, tstT0+tc.took/2, link{min: rtt}, 0, false, &tstLim); inc != 0 {
			t.Fatalf("a grown window credited %d before a quarter of it was read", inc)
		}
		inc := w.consume(1, tstT0+tc.took, link{min: rtt}, 0, false, &tstLim)
		if w.window != tc.want {
			t.Errorf("a quarter read in %s: window %d, want %d", tc.took, w.window, tc.want)
		}
		if want := quarter + tc.want - 4*tstLim.initial; inc != want {
			t.Errorf("a quarter read in %s: credit %d, want %d", tc.took, inc, want)
		}
	}
}

// TestRecvWindowBurstCountersBounded: a burst that goes on for longer than
// its int32 counters can hold starts afresh instead of wrapping round.
func TestRecvWindowBurstCountersBounded(t *testing.T) {
	const rtt = 200 * time.Millisecond
	w := newRecvWindow(tstLim.initial, tstT0)
	// A payload every 40 ms, well within a quarter round trip, for an hour.
	for at := tstT0; at < tstT0+time.Hour; at += 40 * time.Millisecond {
		w.arrival(100, at, rtt)
		if w.burstSpan < 0 || w.burstBytes < 0 {
			t.Fatalf("at %s the burst counters wrapped: span %d µs, bytes %d", at-tstT0, w.burstSpan, w.burstBytes)
		}
	}
	// 100 bytes per 40 ms is 2.5 kB/s: 2 x 500 bytes at 200 ms.
	if pw := w.pathWindow(rtt); pw < 990 || pw > 1010 {
		t.Fatalf("path window %d after an hour at 2.5 kB/s, want about 1000", pw)
	}
}

// TestRecvWindowFirstRoundTrip: a new stream whose initial window is
// larger than the protocol's credit is credited and tuned at half that
// credit within its first round trip, since the peer can have sent no more
// before the grant at open reaches it; so its first decision falls on the
// first burst, as with a window of the protocol's size, and not a round
// trip later. After a round trip, before the RTT is known, and once the
// window has grown, the whole window counts as before.
func TestRecvWindowFirstRoundTrip(t *testing.T) {
	lim := windowLimits{initial: 1 << 20, max: 32 << 20}
	const credit = 256 << 10 // frame.InitialStreamWindow
	const payload = 16 << 10
	// 16 KiB every 163.84 µs is 100 MB/s: 2 x 5 MB at 50 ms.
	at100MBps := 163840 * time.Nanosecond
	tests := []struct {
		name      string
		rtt       time.Duration
		start     time.Duration // from the stream's start to its first data
		window    int64         // before; 0: lim.initial
		read      int64         // consumed, back to back from the first data
		wantCred  bool          // some credit goes back
		wantAbout int64         // window afterwards, within 1%
	}{
		{"first round trip at 50 ms: half the protocol's credit decides, on the first burst", 50 * time.Millisecond, time.Millisecond, 0, credit / 2, true, 10e6},
		{"first round trip: nothing before half the protocol's credit", 50 * time.Millisecond, time.Millisecond, 0, credit/2 - 1, false, 1 << 20},
		{"past a round trip the peer had the whole window: half of it decides", 50 * time.Millisecond, 50 * time.Millisecond, 0, credit / 2, false, 1 << 20},
		{"past a round trip, at half the window", 50 * time.Millisecond, 50 * time.Millisecond, 0, 1 << 19, true, 10e6},
		{"RTT not measured yet: half the window decides", 0, time.Millisecond, 0, credit / 2, false, 1 << 20},
		{"loopback: the round trip is over long before half the credit is read, so half the window decides", 50 * time.Microsecond, 0, 0, credit / 2, false, 1 << 20},
		{"loopback, at half the window: no growth past the 10 Gbit/s product", 50 * time.Microsecond, 0, 0, 1 << 19, true, 1 << 20},
		{"a grown window credits at a quarter of itself", 50 * time.Millisecond, time.Millisecond, 4 << 20, credit / 2, false, 4 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newRecvWindow(lim.initial, tstT0)
			if tc.window != 0 {
				w.window = tc.window
			}
			before := w.window
			if !w.admit(tc.read) {
				t.Fatal("admit refused what was read")
			}
			w.startWait(tstT0)
			first := tstT0 + tc.start
			now := first
			// The read keeps pace with payloads arriving at 100 MB/s.
			for got := int64(0); got < tc.read; got += payload {
				n := min(payload, tc.read-got)
				w.arrival(n, now, tc.rtt)
				w.stopWait(now)
				inc := w.consume(n, now, link{min: tc.rtt}, 0, false, &lim)
				w.startWait(now)
				if inc != 0 && got+n < tc.read {
					t.Fatalf("credit %d after %d bytes, before %d", inc, got+n, tc.read)
				}
				if got+n == tc.read {
					if (inc != 0) != tc.wantCred {
						t.Fatalf("credit %d after %d bytes; want credit: %v", inc, tc.read, tc.wantCred)
					}
					if tc.wantCred {
						if want := tc.read + w.window - before; inc != want {
							t.Errorf("credit %d, want %d: what was read plus the growth", inc, want)
						}
					}
				}
				now += at100MBps
			}
			if w.window < tc.wantAbout*99/100 || w.window > tc.wantAbout*101/100 {
				t.Errorf("window %d, want about %d", w.window, tc.wantAbout)
			}
		})
	}
}

// TestRecvWindowFirstDecisionAsWithProtocolWindow: across a 50 ms link the
// first credit of a stream with a 1 MiB initial window goes back when that
// of a stream with the protocol's 256 KiB does, and grows it as far: the
// peer sends the same 256 KiB at open either way.
func TestRecvWindowFirstDecisionAsWithProtocolWindow(t *testing.T) {
	const rtt = 50 * time.Millisecond
	const payload = 16 << 10
	at100MBps := 163840 * time.Nanosecond
	firstCredit := func(lim windowLimits) (after int64, window int64) {
		w := newRecvWindow(lim.initial, tstT0)
		w.startWait(tstT0)
		now := tstT0 + rtt/2 // the OPEN and its data come half a round trip after the open
		for got := int64(0); got < 256<<10; got += payload {
			w.admit(payload)
			w.arrival(payload, now, rtt)
			if inc := w.consume(payload, now, link{min: rtt}, 0, false, &lim); inc != 0 {
				return got + payload, w.window
			}
			now += at100MBps
		}
		return 0, w.window
	}
	smallAt, smallWin := firstCredit(windowLimits{initial: 256 << 10, max: 32 << 20})
	bigAt, bigWin := firstCredit(windowLimits{initial: 1 << 20, max: 32 << 20})
	if smallAt == 0 || bigAt != smallAt {
		t.Fatalf("first credit after %d bytes with a 1 MiB window, %d with 256 KiB; want the same, within the 256 KiB the peer sends at open", bigAt, smallAt)
	}
	if bigWin < smallWin {
		t.Fatalf("the first decision grew a 1 MiB window to %d, a 256 KiB one to %d", bigWin, smallWin)
	}
}

// TestSessionSendFloor: a take with a floor leaves that much credit for
// takes without one.
func TestSessionSendFloor(t *testing.T) {
	tstTakes(t, newSessionSend(100), []tstTake{
		{80, 30, 70, "take(80) above a floor of 30 of 100"},
		{10, 30, 0, "take above the floor with only the floor left"},
		{50, 0, 30, "take without a floor, 30 left"},
	})
}

// tstTake is one sessionSend.take and what it must return.
type tstTake struct {
	want, floor, got int64
	what             string
}

// tstTakes makes the takes in order on f.
func tstTakes(t *testing.T, f *sessionSend, takes []tstTake) {
	t.Helper()
	for _, tk := range takes {
		if got := f.take(tk.want, tk.floor); got != tk.got {
			t.Fatalf("%s = %d; want %d", tk.what, got, tk.got)
		}
	}
}
