package mux

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// Keepalive and round-trip time: PINGs at start-up to measure the RTT that
// window auto-tuning works with, and PINGs at KeepAliveInterval that keep
// middleboxes awake and detect a peer that went silent.

// startupProbes is how many pings a session sends back to back at start
// to find its round-trip time.
const startupProbes = 5

// RTT is the round-trip time measured by the latest PING, or 0 before the
// first answer.
func (s *Session) RTT() time.Duration { return time.Duration(s.rtt.Load()) }

// Ping sends a PING and waits for its PONG.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	ch := make(chan time.Duration, 1)
	id := s.newPing(ch)
	s.queueCtrl(func(b []byte) []byte { return frame.AppendPing(b, false, id) })
	select {
	case rtt := <-ch:
		return rtt, nil
	case <-ctx.Done():
		s.pingMu.Lock()
		delete(s.pings, id)
		s.pingMu.Unlock()
		return 0, ctx.Err()
	case <-s.done:
		return 0, s.Err()
	}
}

func (s *Session) newPing(ch chan time.Duration) uint64 {
	s.pingMu.Lock()
	defer s.pingMu.Unlock()
	s.pingSeq++
	// The opaque value carries the send time, so the PONG alone gives the
	// RTT; the sequence number in the low bits keeps concurrent pings apart.
	id := uint64(time.Since(s.start).Microseconds())<<16 | s.pingSeq&0xffff
	s.pings[id] = ch
	return id
}

func (s *Session) handlePong(id uint64) {
	s.pingMu.Lock()
	ch, ok := s.pings[id]
	delete(s.pings, id)
	s.pingMu.Unlock()
	if !ok {
		return // an answer to a ping whose caller gave up, or a stray: harmless
	}
	sent := time.Duration(id>>16) * time.Microsecond
	now := time.Since(s.start)
	rtt := max(now-sent, time.Microsecond)
	s.rtt.Store(int64(rtt))
	s.rttAt.Store(int64(now))
	if ch != nil {
		ch <- rtt
	}
	// The first ping also timed the peer's own start-up, and any one
	// sample may have waited behind the scheduler; a window tuned to such a
	// sample would be far too large. So a few more follow at start-up, one
	// after another, and tuning takes the smallest.
	if n := s.probes.Add(1); n < startupProbes {
		next := s.newPing(nil)
		s.queueCtrl(func(b []byte) []byte { return frame.AppendPing(b, false, next) })
		if n == 1 {
			// New streams' windows may take it, though: a window sized
			// to too long a round trip only allows more than the path
			// needs, and a round trip earlier is when a WAN session's
			// first streams open. The next sample corrects it.
			s.rttChanged(rtt)
			return
		}
	}
	for {
		old := s.minRTT.Load()
		if old != 0 && old <= int64(rtt) {
			return
		}
		if s.minRTT.CompareAndSwap(old, int64(rtt)) {
			s.rttChanged(rtt)
			return
		}
	}
}

// link is what window auto-tuning knows of the path at now: the smallest
// round trip, and the queueing delay the latest one showed, if it was
// measured within the last four round trips (older, it says nothing about
// the queue now).
func (s *Session) link(now time.Duration) link {
	l := link{min: s.tuningRTT()}
	if l.min == 0 {
		return l
	}
	at := time.Duration(s.rttAt.Load())
	if now-at <= 4*l.min {
		l.queue = max(time.Duration(s.rtt.Load())-l.min, 0)
	}
	return l
}

// probeDue returns a PING to send along with stream credit, at most one per
// smallest round trip, or 0. The peer's PONG travels here behind the data
// it is sending, so it times the queue in front of this side's readers:
// what keeps auto-tuning from growing windows into a queue.
func (s *Session) probeDue() uint64 {
	min := s.tuningRTT()
	if !s.windowsGrow(min) {
		// There is nothing to keep from growing.
		return 0
	}
	now := int64(time.Since(s.start))
	last := s.lastProbe.Load()
	if now-last < int64(min) || !s.lastProbe.CompareAndSwap(last, now) {
		return 0
	}
	return s.newPing(nil)
}

// windowsGrow reports whether stream windows can grow at round trip rtt:
// not before it is measured (0), nor where it is so short (loopback, a
// LAN) that the initial window already covers 10 Gbit/s.
func (s *Session) windowsGrow(rtt time.Duration) bool {
	return rtt > 0 && windowFor10Gbps(rtt) >= 2*s.lim.initial
}

// now reads the session's clock: the time since the session started, on
// the monotonic clock.
func (s *Session) now() time.Duration { return time.Since(s.start) }

// tuningRTT is the round-trip time window auto-tuning works with: the
// smallest one seen, since samples taken behind bulk data are inflated by
// queueing, and a window sized to queueing only queues more.
func (s *Session) tuningRTT() time.Duration { return time.Duration(s.minRTT.Load()) }

// keepalive pings the peer every KeepAliveInterval and ends the session
// when nothing has arrived from it for KeepAliveTimeout. The deadline is
// kept to the moment (a timer set for when the silence would reach the
// timeout), not checked on the ping ticks, which would let a dead peer
// linger up to an interval longer. Both are timers, not a goroutine: an
// idle session (most of an edge's) holds no stack for them between pings.
type keepalive struct {
	mu      sync.Mutex
	stopped bool
	ping    *time.Timer
	dead    *time.Timer
}

// startKeepalive arms the session's keepalive timers.
func (s *Session) startKeepalive() {
	s.ka.mu.Lock()
	defer s.ka.mu.Unlock()
	if s.ka.stopped {
		return // the session ended before it started
	}
	s.ka.ping = time.AfterFunc(s.cfg.KeepAliveInterval, s.keepalivePing)
	s.ka.dead = time.AfterFunc(s.cfg.KeepAliveTimeout, s.keepaliveCheck)
}

// stopKeepalive disarms the timers; once it returns, no timer's work is
// running or will run.
func (s *Session) stopKeepalive() {
	s.ka.mu.Lock()
	defer s.ka.mu.Unlock()
	s.ka.stopped = true
	if s.ka.ping != nil {
		s.ka.ping.Stop()
		s.ka.dead.Stop()
	}
}

func (s *Session) keepalivePing() {
	s.ka.mu.Lock()
	defer s.ka.mu.Unlock()
	if s.ka.stopped {
		return
	}
	s.pingMu.Lock()
	// Forget keepalive pings that were never answered, so a silent peer
	// cannot grow the map.
	for id, ch := range s.pings {
		if ch == nil {
			delete(s.pings, id)
		}
	}
	s.pingMu.Unlock()
	id := s.newPing(nil)
	s.queueCtrl(func(b []byte) []byte { return frame.AppendPing(b, false, id) })
	s.ka.ping.Reset(s.cfg.KeepAliveInterval)
}

func (s *Session) keepaliveCheck() {
	s.ka.mu.Lock()
	if s.ka.stopped {
		s.ka.mu.Unlock()
		return
	}
	left := silenceLeft(s.in.heard(), time.Since(s.start), s.cfg.KeepAliveTimeout)
	if left > 0 {
		s.ka.dead.Reset(left)
		s.ka.mu.Unlock()
		return
	}
	s.ka.mu.Unlock()
	s.fail(ErrKeepAliveTimeout) // stops the timers
}

// silenceLeft is how much longer the peer may stay silent before it counts
// as dead, given when it was last heard and the time now (both as time
// since the session started).
func silenceLeft(heard, now, timeout time.Duration) time.Duration {
	return heard + timeout - now
}

// heardReader is the connection as the session's reader sees it: it notes
// when bytes last arrived, what keepalive judges the peer by. One clock
// read per read from the connection, not per frame.
type heardReader struct {
	r     io.Reader
	vec   *vectorConn // r read with readv(2), where it can be
	start time.Time
	last  atomic.Int64 // when bytes last arrived, as time since start
}

func (h *heardReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n > 0 {
		h.last.Store(int64(time.Since(h.start)))
	}
	return n, err
}

// ReadVector reads into a, then b, with one system call where the
// connection allows it (frame.VectorReader); elsewhere it reads a alone.
func (h *heardReader) ReadVector(a, b []byte) (int, error) {
	if h.vec == nil {
		return h.Read(a)
	}
	n, err := h.vec.read(a, b)
	if n > 0 {
		h.last.Store(int64(time.Since(h.start)))
	}
	return n, err
}

// heard is when bytes last arrived, as time since the session started.
func (h *heardReader) heard() time.Duration { return time.Duration(h.last.Load()) }
