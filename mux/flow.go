package mux

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// Flow control: what this side may send and what it lets the peer send, for
// each stream and for the session as a whole. Nothing here does I/O or
// reads a clock: the callers pass the time and the round-trip time in, so
// the rules are tested with a clock held in the test. Times are readings of
// the session's clock (Session.now: time since the session started, on the
// monotonic clock), 8 bytes where a time.Time takes 24: a stream holds two. The wire side of it
// (WINDOW_UPDATE) is in docs/PROTOCOL.md.

// link is what the session knows of the path from the peer: the smallest
// round trip measured, and how much longer the latest one took (time the
// data waits in queues on the way, 0 if unknown).
type link struct {
	min, queue time.Duration
}

// windowLimits bounds a stream's receive window: auto-tuning moves it
// between initial and max.
type windowLimits struct {
	initial, max int64
}

// recvWindow is a stream's receive window: how much the peer may have in
// flight, and when to credit consumed bytes back. It auto-tunes: it grows
// when the window, not the reader, limits the stream, and shrinks when the
// reader falls behind. The caller holds the stream's lock.
type recvWindow struct {
	window   int64 // current window
	inFlight int64 // received, not yet credited back
	unacked  int64 // consumed, not yet credited back

	// Auto-tuning looks at one epoch at a time: from one credit sent to
	// the next.
	epoch  time.Duration // when credit was last sent
	waited time.Duration // time the reader spent waiting for data within the epoch
	// waitingSince is when the reader started waiting, notWaiting while it
	// is not. A wait still going on counts as far as it has gone, so a
	// reader that never wakes (the session's reader hands the data to
	// WriteTo's socket itself) is seen to be waiting all along.
	waitingSince time.Duration

	// The current burst: payloads arriving less than a quarter of a round
	// trip apart. How fast a burst arrives is what the path delivers
	// (a window-limited sender sends each credit at once, and the path
	// spreads it out at its rate), so growth can jump to the window the
	// path needs instead of doubling towards it. 16 bytes, so a Stream
	// stays within 256.
	burstStart time.Duration // when its first payload arrived
	burstSpan  int32         // µs from burstStart to the latest payload
	burstBytes int32         // bytes that arrived after the first payload
}

// notWaiting is waitingSince while the reader is not waiting: no reading
// of the session's clock is negative.
const notWaiting time.Duration = -1

func newRecvWindow(window int64, now time.Duration) recvWindow {
	return recvWindow{window: window, epoch: now, waitingSince: notWaiting}
}

// admit takes n bytes the peer sent into the window; false if they do not
// fit, a flow-control violation by the peer.
func (w *recvWindow) admit(n int64) bool {
	if w.inFlight+n > w.window {
		return false
	}
	w.inFlight += n
	return true
}

// first reports whether the n bytes just admitted are all that is in
// flight: the first data after a pause.
func (w *recvWindow) first(n int64) bool { return w.inFlight == n && w.unacked == 0 }

// arrived is called at now with the first data after a pause. A pause
// longer than the two round trips an epoch may take to grow the window
// says nothing about the window, so the epoch starts afresh. A shorter one
// is part of the epoch: a window-limited sender pauses for a round trip
// after every window, and that pause is what shows the window is small.
func (w *recvWindow) arrived(now, rtt time.Duration) {
	if now-w.epoch > 2*rtt {
		w.restart(now)
	}
}

// restart begins a tuning epoch at now.
func (w *recvWindow) restart(now time.Duration) {
	w.epoch, w.waited = now, 0
}

// burstGap is the silence that ends a burst: a quarter of the round trip.
// A window-limited sender falls silent for most of a round trip between
// credits; a path's own pacing leaves far shorter gaps.
func burstGap(rtt time.Duration) time.Duration { return rtt / 4 }

// minBurstSpan is the shortest time a burst's rate is measured over:
// payloads read back to back from a socket buffer take no measurable time,
// and a burst that came in faster than this is known only to be at least
// that fast.
const minBurstSpan = 100 * time.Microsecond

// maxBurst and maxBurstSpan keep a burst's counters within their int32s;
// a longer burst starts afresh (its rate is known by then).
const (
	maxBurst     = 1 << 30
	maxBurstSpan = (1 << 30) * time.Microsecond
)

// arrival records n bytes arriving at now, for the burst's rate; rtt is
// the smallest round trip.
func (w *recvWindow) arrival(n int64, now, rtt time.Duration) {
	last := w.burstStart + time.Duration(w.burstSpan)*time.Microsecond
	if w.burstStart == 0 || now < last || now-last > burstGap(rtt) ||
		int64(w.burstBytes)+n > maxBurst || now-w.burstStart > maxBurstSpan {
		w.burstStart, w.burstSpan, w.burstBytes = now, 0, 0
		return
	}
	w.burstSpan = int32((now - w.burstStart) / time.Microsecond)
	w.burstBytes += int32(n)
}

// pathWindow is twice the bandwidth-delay product the current burst
// shows at round trip rtt (the window that keeps the path busy while
// credit is on its way back), or 0 while the burst is a single payload.
func (w *recvWindow) pathWindow(rtt time.Duration) int64 {
	span := max(time.Duration(w.burstSpan)*time.Microsecond, minBurstSpan)
	return 2 * int64(float64(w.burstBytes)*float64(rtt)/float64(span))
}

// startWait records that the reader began waiting for data at now.
func (w *recvWindow) startWait(now time.Duration) {
	if w.waitingSince == notWaiting {
		w.waitingSince = now
	}
}

// waiting reports whether the reader is waiting for data.
func (w *recvWindow) waiting() bool { return w.waitingSince != notWaiting }

// stopWait records that the reader stopped waiting at now.
func (w *recvWindow) stopWait(now time.Duration) {
	if w.waitingSince == notWaiting {
		return
	}
	w.waited += w.waitedSince(w.waitingSince, now)
	w.waitingSince = notWaiting
}

// waitedSince is the part of a wait from start to now that falls within
// the current epoch.
func (w *recvWindow) waitedSince(start, now time.Duration) time.Duration {
	return max(now-max(start, w.epoch), 0)
}

// consume accounts for n bytes the reader took at now and returns the
// stream credit to send the peer (0: none yet). buffered is what is still
// unread after them, l the path (l.min is 0 before the RTT is known), fin
// whether the peer has finished sending (no credit is needed then).
//
// Credit goes back once half the window has been consumed (half of what
// the peer could use so far, in a new stream's first round trip: see
// usable), or a quarter once the window has grown, and the window is
// tuned at that moment. A
// grown window is one the path needs: crediting at half of it would leave
// only half in flight while the credit travels, and a quarter keeps three
// quarters in flight (the 32 MiB maximum then fills a 200 ms, 100 MB/s
// path); an initial window, which on loopback and LANs never grows, is
// credited at half, so WINDOW_UPDATEs (each a wake-up for the peer's
// reader) stay rare there.
//
// Grow when the window is what limits the stream: to twice the
// bandwidth-delay product the latest burst of arrivals shows (its rate
// times the smallest round trip), so that one step reaches the window the
// path needs, or double if that is more (as QUIC implementations do), up
// to lim.max. It grows when what was credited went by at a quarter of the
// window per round trip or faster (half of it within two round trips), the
// reader spent at least half of that time waiting for data; and not
// when data already waits in a queue on the way for half a round trip or
// more: the link, not the window, is then the limit, and a larger window
// would only lengthen the queue that small messages of other streams wait
// in; and never beyond what 10 Gbit/s needs at the measured RTT, so that on
// loopback and LANs, where RTT samples are mostly scheduling noise, the
// window stays small. Every reader counts its waits: Read and WriteTo while they block,
// and a WriteTo whose socket the session's reader writes into all the time
// it has nothing else to do. How much is buffered at this moment is no
// sign against growing: a window-limited sender delivers a whole window
// in one burst, which a reader that keeps up finds buffered.
//
// Shrink (towards half, down to lim.initial, by at most the credit due)
// when the reader is the bottleneck:
// it had data waiting for most of the epoch and half a window or more is
// still buffered; or when data waits a whole round trip in a queue on the
// way, so that the windows of bulk streams settle near the link's
// bandwidth-delay product instead of filling its queue. Credit cannot be taken back, so shrinking means crediting
// back less than was read. Without it a window grown for a fast phase
// would let data pile up for a slow reader, which on loopback was measured
// to double the CPU cost per byte through cache misses.
func (w *recvWindow) consume(n int64, now time.Duration, l link, buffered int64, fin bool, lim *windowLimits) (inc int64) {
	w.unacked += n
	if fin {
		return 0
	}
	epoch := now - w.epoch
	usable := w.usable(epoch, l.min, lim)
	if w.unacked < w.creditAt(usable, lim) {
		return 0
	}
	waited := w.waited
	if w.waiting() {
		waited += w.waitedSince(w.waitingSince, now)
	}
	// busy: the reader had data waiting for most of the epoch. A reader
	// that waited for it keeps up, however much a burst left buffered at
	// this moment (a window-limited sender delivers a whole window at once).
	// So does one that took what it credits back in under a quarter of a
	// round trip, waits or not, since the sender needs a round trip to
	// refill it: a new stream's first data arrives before its reader
	// starts.
	busy := 2*waited < epoch && 4*epoch >= l.min
	switch {
	case busy && buffered >= w.window/2, l.min > 0 && l.queue >= l.min:
		shrink := min(w.window-max(w.window/2, lim.initial), w.unacked-1)
		if shrink > 0 {
			w.window -= shrink
			inc -= shrink
		}
	case !busy && l.min > 0 && fastEpoch(w.unacked, usable, epoch, l.min) && l.queue < l.min/2 && 2*w.window <= windowFor10Gbps(l.min):
		target := max(2*w.window, min(w.pathWindow(l.min), windowFor10Gbps(l.min)))
		if grow := min(target, lim.max) - w.window; grow > 0 {
			w.window += grow
			inc += grow
		}
	}
	w.restart(now)
	inc += w.unacked
	w.inFlight -= w.unacked
	w.unacked = 0
	return inc
}

// creditAt is how much of the window is consumed before credit goes back,
// given the part of it the peer could use (see usable).
func (w *recvWindow) creditAt(usable int64, lim *windowLimits) int64 {
	if w.window > lim.initial {
		return w.window / 4
	}
	return usable / 2
}

// usable is how much of an initial window the peer can have used an
// epoch old, at round trip rtt. Credit takes half a round trip to reach
// the peer and its data as long to come back, so within a round trip of
// the epoch's start it can have sent only what it held then: for a new
// stream, the protocol's initial credit, since a larger initial window is
// granted by a WINDOW_UPDATE at open. Crediting and tuning at half of what
// the peer could send keeps the first decision on the first burst, as
// with a window of the protocol's size; waiting for half a larger window
// would put it a round trip later, and across a WAN that round trip is
// most of a short transfer's time. A window that has grown, or an epoch
// past a round trip, counts whole.
func (w *recvWindow) usable(epoch, rtt time.Duration, lim *windowLimits) int64 {
	if epoch < rtt && w.window == lim.initial && w.window > frame.InitialStreamWindow {
		return frame.InitialStreamWindow
	}
	return w.window
}

// fastEpoch reports whether consumed bytes of a window went by in epoch
// quickly enough to show the window limits the stream: at least a quarter
// of the window per round trip, such as half of it within two.
func fastEpoch(consumed, window int64, epoch, rtt time.Duration) bool {
	return float64(epoch)*float64(window) < 4*float64(consumed)*float64(rtt)
}

// windowFor10Gbps is twice the bandwidth-delay product of a 10 Gbit/s
// (1.25 bytes per nanosecond) link with the given RTT.
func windowFor10Gbps(rtt time.Duration) int64 { return rtt.Nanoseconds() * 5 / 2 }

// sendCredit is what the peer lets this side send on one stream. The
// caller holds the stream's lock.
type sendCredit struct{ n int64 }

// take reserves up to want bytes and returns how many it got.
func (c *sendCredit) take(want int64) int64 {
	k := min(want, c.n)
	c.n -= k
	return k
}

// give returns reserved bytes that were not sent.
func (c *sendCredit) give(n int64) { c.n += n }

// grant adds the peer's WINDOW_UPDATE; false if the total passes limit, a
// flow-control violation by the peer.
func (c *sendCredit) grant(inc, limit int64) bool {
	c.n += inc
	return c.n <= limit
}

// sessionRecv accounts for the session receive window: the bytes of all
// streams received and not yet credited back. It is shared by the session's
// reader and every stream's reader, so it works with atomics alone.
type sessionRecv struct {
	window   int64
	inFlight atomic.Int64 // received, not yet credited back
	unacked  atomic.Int64 // consumed, not yet credited back
}

// received takes n bytes into the window; false if the peer sent beyond it.
// When it returns true with flush true, the peer is nearly out of credit
// and what was consumed must be credited back now (see low).
func (f *sessionRecv) received(n int64) (ok, flush bool) {
	inFlight := f.inFlight.Add(n)
	if inFlight > f.window {
		return false, false
	}
	return true, f.low(inFlight) && f.unacked.Load() > 0
}

// over is how far the bytes in flight are beyond the window.
func (f *sessionRecv) over() int64 { return f.inFlight.Load() - f.window }

// consumed accounts for n bytes read (or discarded) and reports whether
// credit should go back now: in batches of a quarter window, so updates
// stay rare, or at once when the peer is nearly out.
func (f *sessionRecv) consumed(n int64) (flush bool) {
	u := f.unacked.Add(n)
	return u >= f.window/4 || f.low(f.inFlight.Load())
}

// low reports whether the peer has less than a quarter of the window left,
// given the bytes in flight. Stalled streams then hold the rest, and what
// was read must be credited back now rather than once a quarter window has
// been read: that may never happen, and the streams still moving would
// wait for credit forever.
func (f *sessionRecv) low(inFlight int64) bool {
	return f.window-inFlight < f.window/4
}

// take returns the credit to send the peer for everything consumed so far,
// and counts it as no longer in flight.
func (f *sessionRecv) take() int64 {
	got := f.unacked.Swap(0)
	if got > 0 {
		f.inFlight.Add(-got)
	}
	return got
}

// sessionSend is the send credit the peer granted to the session as a
// whole, shared by every stream's writer.
type sessionSend struct {
	credit atomic.Int64
	mu     sync.Mutex
	ch     chan struct{} // closed (and replaced) when credit arrives
}

func newSessionSend(initial int64) *sessionSend {
	f := &sessionSend{ch: make(chan struct{})}
	f.credit.Store(initial)
	return f
}

// take reserves up to want bytes of the credit above floor without
// waiting; 0 if none is left.
func (f *sessionSend) take(want, floor int64) int64 {
	for {
		avail := f.credit.Load()
		if avail <= floor {
			return 0
		}
		n := min(avail-floor, want)
		if f.credit.CompareAndSwap(avail, avail-n) {
			return n
		}
	}
}

// arrival returns a channel closed when credit next arrives. A caller that
// found none takes the channel, then looks once more before it waits.
func (f *sessionSend) arrival() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ch
}

// add puts credit in (the peer's grant, or a reservation not used) and
// wakes every waiter; it returns the new total.
func (f *sessionSend) add(n int64) int64 {
	total := f.credit.Add(n)
	f.mu.Lock()
	close(f.ch)
	f.ch = make(chan struct{})
	f.mu.Unlock()
	return total
}
