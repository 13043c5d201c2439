// Package mux multiplexes many reliable, ordered, flow-controlled streams
// over one net.Conn, the way sluice carries every tunnelled connection
// between an edge and an agent. It stands on its own: any program that has
// a net.Conn can use it in place of hashicorp/yamux or xtaci/smux.
//
// A Session reads frames in one goroutine and writes them in another. The
// writer batches every queued frame into one writev: control frames first,
// then one DATA frame per stream in turn, so a bulk stream cannot starve a
// small request. Each stream has its own credit (a receive window that
// auto-tunes towards the bandwidth-delay product) and the session has a
// window of its own that bounds what all streams together may buffer.
//
// The wire format is in docs/PROTOCOL.md; the codec is package frame.
package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/frame"
	"github.com/valyala/bytebufferpool"
)

// readBufferSize is the connection read buffer: large enough that a burst
// of small frames costs one system call.
const readBufferSize = 32 << 10

// maxBatchBytes and maxBatchFrames bound one writev, so the writer goes
// back for fresh control frames (window updates, pongs) often enough.
const (
	maxBatchBytes  = 1 << 20
	maxBatchFrames = 512
)

// startupProbes is how many pings a session sends back to back at start
// to find its round-trip time.
const startupProbes = 5

// maxQueuedCtrl bounds the control frames waiting for the writer. Only a
// peer that keeps sending frames that need an answer (PING, an OPEN to
// refuse) without reading the answers gets near it; the session ends
// rather than queue answers for it without bound.
const maxQueuedCtrl = 1 << 20

var errPeerClosed = errors.New("the peer closed the connection")

// Session is one multiplexed connection. Both ends can open and accept
// streams. A Session is also a net.Listener whose Accept yields the
// streams the peer opens.
type Session struct {
	conn   net.Conn
	cfg    Config
	client bool
	fr     *frame.Reader

	streams    sync.Map      // stream ID -> *Stream
	nextID     atomic.Uint32 // next ID this side will open
	lastPeerID uint32        // highest ID the peer opened; recvLoop only
	numStreams atomic.Int32
	acceptCh   chan *Stream

	// Writer queue, guarded by wmu: control frames and streams with data.
	wmu   sync.Mutex
	ctrl  []byte
	ready []*Stream
	wake  chan struct{}

	// Send credit the peer granted to the session as a whole.
	sendCredit atomic.Int64
	creditMu   sync.Mutex
	creditCh   chan struct{} // closed (and replaced) when credit arrives

	// Receive accounting for the session window.
	recvInFlight atomic.Int64 // received and not yet credited back
	recvUnacked  atomic.Int64 // consumed and not yet credited back
	buffered     atomic.Int64 // received and not yet read, all streams

	goAwaySent atomic.Bool
	goAwayRecv atomic.Bool
	remoteCode atomic.Uint32 // error code of the peer's GOAWAY, if any

	done      chan struct{}
	closeOnce sync.Once
	errMu     sync.Mutex
	err       error
	connMu    sync.Mutex   // held by whoever builds a batch and writes it to conn
	bw        *batchWriter // the batch being built and written; guarded by connMu
	// prefaceSent: the preface has gone out (guarded by connMu). A GOAWAY
	// written by fail before the first batch must bring the preface along,
	// or the peer reads the GOAWAY as a garbled preface and never learns why.
	prefaceSent bool
	loops       sync.WaitGroup

	// Keepalive and RTT.
	start   time.Time
	rtt     atomic.Int64 // latest sample
	minRTT  atomic.Int64 // smallest sample; what window auto-tuning uses
	probes  atomic.Int32 // startup pings answered so far
	pingMu  sync.Mutex
	pingSeq uint64
	pings   map[uint64]chan time.Duration

	stats counters
}

type counters struct {
	bytesSent, bytesReceived   atomic.Uint64
	framesSent, framesReceived atomic.Uint64
	batches                    atomic.Uint64
	sinkBytes                  atomic.Uint64
}

// Client starts the dialing side of a session over conn. Client streams
// have odd IDs.
func Client(conn net.Conn, cfg Config) (*Session, error) { return newSession(conn, cfg, true) }

// Server starts the accepting side of a session over conn. Server streams
// have even IDs.
func Server(conn net.Conn, cfg Config) (*Session, error) { return newSession(conn, cfg, false) }

func newSession(conn net.Conn, cfg Config, client bool) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Session{
		conn:     conn,
		cfg:      cfg,
		client:   client,
		fr:       frame.NewReader(conn, readBufferSize),
		acceptCh: make(chan *Stream, cfg.AcceptBacklog),
		wake:     make(chan struct{}, 1),
		creditCh: make(chan struct{}),
		done:     make(chan struct{}),
		start:    time.Now(),
		pings:    make(map[uint64]chan time.Duration),
	}
	s.bw = newBatchWriter(s)
	if client {
		s.nextID.Store(1)
	} else {
		s.nextID.Store(2)
	}
	s.sendCredit.Store(frame.InitialSessionWindow)
	// The first batch: preface, the session credit beyond the protocol's
	// initial amount, and a ping that seeds the RTT estimate.
	s.ctrl = frame.AppendPreface(make([]byte, 0, 4096))
	if extra := cfg.SessionWindow - frame.InitialSessionWindow; extra > 0 {
		s.ctrl = frame.AppendWindowUpdate(s.ctrl, 0, extra)
	}
	s.ctrl = frame.AppendPing(s.ctrl, false, s.newPing(nil))
	s.wake <- struct{}{}
	s.loops.Add(2)
	go s.recvLoop()
	go s.sendLoop()
	if cfg.KeepAliveInterval > 0 {
		s.loops.Add(1)
		go s.keepalive()
	}
	return s, nil
}

// OpenStream opens a new stream. It does not wait for the peer: data
// written right away travels behind the OPEN frame. If the peer refuses the
// stream, the stream's calls fail with ErrStreamRefused.
func (s *Session) OpenStream(ctx context.Context) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if s.goAwayRecv.Load() {
		return nil, ErrGoAway
	}
	if s.goAwaySent.Load() {
		return nil, fmt.Errorf("mux: this side sent GOAWAY and opens no new streams: %w", ErrSessionClosed)
	}
	if int(s.numStreams.Load()) >= s.cfg.MaxConcurrentStreams {
		return nil, fmt.Errorf("mux: %d streams already open, the MaxConcurrentStreams limit: %w", s.cfg.MaxConcurrentStreams, ErrStreamRefused)
	}
	// The ID is taken under the writer's lock, in the same step that
	// queues the OPEN: OPENs must reach the peer in ID order, and two
	// goroutines opening at once would otherwise queue theirs the other
	// way round, which the peer must treat as a protocol error.
	s.wmu.Lock()
	id := s.nextID.Load()
	if id > math.MaxInt32 {
		s.wmu.Unlock()
		return nil, fmt.Errorf("mux: stream IDs are used up on this session; open a new session: %w", ErrSessionClosed)
	}
	s.nextID.Store(id + 2)
	st := newStream(s, id)
	s.streams.Store(id, st)
	s.numStreams.Add(1)
	s.ctrl = frame.AppendOpen(s.ctrl, id)
	if extra := s.cfg.InitialStreamWindow - frame.InitialStreamWindow; extra > 0 {
		s.ctrl = frame.AppendWindowUpdate(s.ctrl, id, extra)
	}
	s.wmu.Unlock()
	s.signalWriter()
	return st, nil
}

// AcceptStream waits for the next stream the peer opens.
func (s *Session) AcceptStream(ctx context.Context) (*Stream, error) {
	select {
	case st := <-s.acceptCh:
		return st, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		return nil, s.Err()
	}
}

// Accept waits for the next stream the peer opens (net.Listener).
func (s *Session) Accept() (net.Conn, error) {
	st, err := s.AcceptStream(context.Background())
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Addr is the local address of the underlying connection (net.Listener).
func (s *Session) Addr() net.Addr { return s.conn.LocalAddr() }

// LocalAddr is the local address of the underlying connection.
func (s *Session) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// RemoteAddr is the peer's address on the underlying connection.
func (s *Session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// NumStreams is the number of streams open on the session.
func (s *Session) NumStreams() int { return int(s.numStreams.Load()) }

// Done is closed when the session is over.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session ended, or nil while it is alive. The error
// matches ErrSessionClosed and, with errors.Is/As, its cause.
func (s *Session) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// Close ends the session at once: the connection is closed and every
// blocked call on the session and its streams returns an error. For a
// graceful end, call GoAway, wait for the streams to finish, then Close.
func (s *Session) Close() error {
	s.fail(ErrSessionClosed)
	s.loops.Wait()
	return nil
}

// GoAway tells the peer that this side accepts no new streams. Streams
// already open carry on; new OPENs from the peer are refused.
func (s *Session) GoAway() error {
	if s.goAwaySent.Swap(true) {
		return nil
	}
	if err := s.Err(); err != nil {
		return err
	}
	s.queueCtrl(func(b []byte) []byte { return frame.AppendGoAway(b, frame.CodeNoError) })
	return nil
}

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

// Stats is a snapshot of a session's counters, for metrics.
type Stats struct {
	Streams        int           // streams open now
	BytesSent      uint64        // DATA payload bytes written
	BytesReceived  uint64        // DATA payload bytes read from the peer
	FramesSent     uint64        // frames of every type written
	FramesReceived uint64        // frames of every type read
	Batches        uint64        // writev calls; FramesSent/Batches is the batching factor
	RTT            time.Duration // latest keepalive round trip
	RecvBuffered   int64         // bytes received and not yet read by the application
	RecvInFlight   int64         // session window in use: received and not yet credited back
	SendCredit     int64         // session credit the peer granted and this side has not used
	// SinkBytes is the DATA the session's reader wrote straight into the
	// socket of a waiting Stream.WriteTo, sparing it a wake-up.
	SinkBytes uint64
	// SessionWindow is the configured session receive window.
	SessionWindow int64
	// LargestStreamWindow is the largest receive window among the open
	// streams, as auto-tuning has set it (0 with no stream open).
	LargestStreamWindow int64
}

// Stats returns a snapshot of the session's counters. It visits every
// open stream for the window figure, so it costs O(streams): call it for
// metrics, not per message.
func (s *Session) Stats() Stats {
	out := Stats{
		Streams:        s.NumStreams(),
		BytesSent:      s.stats.bytesSent.Load(),
		BytesReceived:  s.stats.bytesReceived.Load(),
		FramesSent:     s.stats.framesSent.Load(),
		FramesReceived: s.stats.framesReceived.Load(),
		Batches:        s.stats.batches.Load(),
		RTT:            s.RTT(),
		RecvBuffered:   s.buffered.Load(),
		RecvInFlight:   s.recvInFlight.Load(),
		SendCredit:     s.sendCredit.Load(),
		SinkBytes:      s.stats.sinkBytes.Load(),
		SessionWindow:  int64(s.cfg.SessionWindow),
	}
	s.streams.Range(func(_, v any) bool {
		st := v.(*Stream)
		st.mu.Lock()
		out.LargestStreamWindow = max(out.LargestStreamWindow, st.recvWindow)
		st.mu.Unlock()
		return true
	})
	return out
}

// fail ends the session with err (the first call wins).
func (s *Session) fail(err error) {
	s.closeOnce.Do(func() {
		s.errMu.Lock()
		if err == ErrSessionClosed {
			s.err = ErrSessionClosed
		} else {
			s.err = &sessionEnded{cause: err}
		}
		s.errMu.Unlock()
		// Tell the peer why, if the connection is free right now. A writer
		// stuck in a write means the connection is of no use anyway.
		var code frame.Code = frame.CodeNoError
		var fe *frame.Error
		switch {
		case errors.As(err, &fe):
			code = fe.Code
		case err == ErrKeepAliveTimeout:
			code = frame.CodeKeepalive
		}
		if err == ErrSessionClosed || fe != nil || err == ErrKeepAliveTimeout {
			if s.connMu.TryLock() {
				var msg []byte
				if !s.prefaceSent {
					msg = frame.AppendPreface(nil)
					s.prefaceSent = true
				}
				_ = s.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				_, _ = s.conn.Write(frame.AppendGoAway(msg, code))
				// Close before letting the writer in again: its next
				// batch may start with the preface, which must not
				// follow the GOAWAY.
				_ = s.conn.Close()
				s.connMu.Unlock()
			}
		}
		close(s.done)
		_ = s.conn.Close()
	})
}

// signalWriter wakes the writer without blocking.
func (s *Session) signalWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// queueCtrl appends a control frame to the writer's queue.
func (s *Session) queueCtrl(appendFrame func([]byte) []byte) {
	s.wmu.Lock()
	s.ctrl = appendFrame(s.ctrl)
	s.wmu.Unlock()
	s.signalWriter()
}

func (s *Session) queueWindowUpdate(id uint32, inc uint32) {
	s.wmu.Lock()
	s.ctrl = frame.AppendWindowUpdate(s.ctrl, id, inc)
	s.wmu.Unlock()
	s.signalWriter()
}

func (s *Session) queueReset(id uint32, code frame.Code) {
	s.wmu.Lock()
	s.ctrl = frame.AppendReset(s.ctrl, id, code)
	s.wmu.Unlock()
	s.signalWriter()
}

// consumed returns n bytes of session window once the application has read
// (or the session has discarded) them, crediting the peer in batches of a
// quarter window so updates stay rare.
func (s *Session) consumed(n int) {
	if n == 0 {
		return
	}
	if u := s.recvUnacked.Add(int64(n)); u >= int64(s.cfg.SessionWindow/4) || s.sessionCreditLow(s.recvInFlight.Load()) {
		s.flushSessionCredit()
	}
}

// sessionCreditLow reports whether the peer has less than a quarter of the
// session window left, given the bytes in flight. Stalled streams then hold
// the rest, and what was read must be credited back now rather than once a
// quarter window has been read: that may never happen, and the streams
// still moving would wait for credit forever.
func (s *Session) sessionCreditLow(inFlight int64) bool {
	return int64(s.cfg.SessionWindow)-inFlight < int64(s.cfg.SessionWindow/4)
}

// flushSessionCredit sends the peer the session credit for everything
// consumed so far.
func (s *Session) flushSessionCredit() {
	if got := s.recvUnacked.Swap(0); got > 0 {
		s.recvInFlight.Add(-got)
		s.queueWindowUpdate(0, uint32(got))
	}
}

// takeCredit reserves up to want bytes of session credit, waiting for some
// to be granted if none is left.
func (s *Session) takeCredit(want int64, st *Stream) (int64, error) {
	for {
		avail := s.sendCredit.Load()
		if avail > 0 {
			n := min(avail, want)
			if s.sendCredit.CompareAndSwap(avail, avail-n) {
				return n, nil
			}
			continue
		}
		s.creditMu.Lock()
		ch := s.creditCh
		s.creditMu.Unlock()
		if s.sendCredit.Load() > 0 {
			continue
		}
		// The stream's waiters are made before its error is looked at, so
		// a Close or reset from now on reaches this wait.
		w := st.waiters()
		if err := st.writeErr(); err != nil {
			return 0, err
		}
		select {
		case <-ch:
		case <-w.writeCh:
			if err := st.writeErr(); err != nil {
				return 0, err
			}
		case <-w.wdl.wait():
			return 0, ErrTimeout
		case <-s.done:
			return 0, s.Err()
		}
	}
}

// giveCredit returns unused session credit (a write that failed after
// reserving it).
func (s *Session) giveCredit(n int64) {
	s.sendCredit.Add(n)
	s.creditArrived()
}

// creditArrived wakes every Write waiting for session credit.
func (s *Session) creditArrived() {
	s.creditMu.Lock()
	close(s.creditCh)
	s.creditCh = make(chan struct{})
	s.creditMu.Unlock()
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
	rtt := max(time.Since(s.start)-sent, time.Microsecond)
	s.rtt.Store(int64(rtt))
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
			return
		}
	}
	for {
		old := s.minRTT.Load()
		if old != 0 && old <= int64(rtt) || s.minRTT.CompareAndSwap(old, int64(rtt)) {
			return
		}
	}
}

// now is the time since the session started, on the monotonic clock.
func (s *Session) now() time.Duration { return time.Since(s.start) }

// tuningRTT is the round-trip time window auto-tuning works with: the
// smallest one seen, since samples taken behind bulk data are inflated by
// queueing, and a window sized to queueing only queues more.
func (s *Session) tuningRTT() time.Duration { return time.Duration(s.minRTT.Load()) }

// keepalive pings the peer and ends the session when nothing has arrived
// from it for KeepAliveTimeout.
func (s *Session) keepalive() {
	defer s.loops.Done()
	t := time.NewTicker(s.cfg.KeepAliveInterval)
	defer t.Stop()
	lastFrames := s.stats.framesReceived.Load()
	lastHeard := time.Now()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			if n := s.stats.framesReceived.Load(); n != lastFrames {
				lastFrames, lastHeard = n, now
			} else if now.Sub(lastHeard) >= s.cfg.KeepAliveTimeout {
				s.fail(ErrKeepAliveTimeout)
				return
			}
			s.pingMu.Lock()
			// Forget keepalive pings that were never answered, so a
			// silent peer cannot grow the map.
			for id, ch := range s.pings {
				if ch == nil {
					delete(s.pings, id)
				}
			}
			s.pingMu.Unlock()
			id := s.newPing(nil)
			s.queueCtrl(func(b []byte) []byte { return frame.AppendPing(b, false, id) })
		}
	}
}

// isPeerID reports whether id has the parity of streams the peer opens.
func (s *Session) isPeerID(id uint32) bool { return (id&1 == 1) != s.client }

// wasOpened reports whether stream id was ever opened, by either side.
func (s *Session) wasOpened(id uint32) bool {
	if s.isPeerID(id) {
		return id <= s.lastPeerID
	}
	return id < s.nextID.Load()
}

// recvLoop reads and dispatches every frame from the peer.
func (s *Session) recvLoop() {
	defer s.loops.Done()
	err := s.fr.ReadPreface()
	for err == nil {
		var h frame.Header
		h, err = s.fr.Next()
		if err != nil {
			break
		}
		s.stats.framesReceived.Add(1)
		err = s.handle(h)
	}
	var fe *frame.Error
	switch {
	case errors.Is(err, net.ErrClosed):
		err = ErrSessionClosed // closed on this side
	case errors.As(err, &fe):
		// A protocol violation is reported as it is.
	case frame.Code(s.remoteCode.Load()) != frame.CodeNoError:
		// The peer said why it ended the session. How its connection went
		// after that (EOF, or a reset because it left our data unread)
		// adds nothing and must not hide the reason.
		err = &RemoteError{Code: frame.Code(s.remoteCode.Load())}
	case errors.Is(err, io.EOF):
		err = errPeerClosed
	}
	s.fail(err)
}

func (s *Session) handle(h frame.Header) error {
	switch h.Type {
	case frame.TypeData:
		return s.handleData(h)
	case frame.TypeOpen:
		return s.handleOpen(h.StreamID)
	case frame.TypeClose:
		st, err := s.lookup(h)
		if st != nil {
			return st.receiveFin()
		}
		return err
	case frame.TypeReset:
		st, err := s.lookup(h)
		if st != nil {
			st.receiveReset(frame.Code(h.Value))
		}
		return err
	case frame.TypeWindowUpdate:
		return s.handleWindowUpdate(h)
	case frame.TypePing:
		if err := s.ctrlFlooded(); err != nil {
			return err
		}
		s.queueCtrl(func(b []byte) []byte { return frame.AppendPing(b, true, h.Value) })
	case frame.TypePong:
		s.handlePong(h.Value)
	case frame.TypeGoAway:
		s.goAwayRecv.Store(true)
		s.remoteCode.Store(uint32(h.Value))
	}
	return nil
}

// lookup finds the stream a frame is for. A frame for a stream that was
// open once and is gone now is dropped quietly (the two sides' views of a
// stream's end cross on the wire); one for a stream never opened is a
// protocol error.
func (s *Session) lookup(h frame.Header) (*Stream, error) {
	if v, ok := s.streams.Load(h.StreamID); ok {
		return v.(*Stream), nil
	}
	if s.wasOpened(h.StreamID) {
		return nil, nil
	}
	return nil, frame.SessionError(frame.CodeProtocol, "%s frame for stream %d, which was never opened", h.Type, h.StreamID)
}

func (s *Session) handleData(h frame.Header) error {
	n := int(h.Length)
	inFlight := s.recvInFlight.Add(int64(n))
	if inFlight > int64(s.cfg.SessionWindow) {
		return frame.SessionError(frame.CodeFlowControl, "the peer sent %d bytes beyond the session window of %d", s.recvInFlight.Load()-int64(s.cfg.SessionWindow), s.cfg.SessionWindow)
	}
	// Data for stalled streams can use up the window after the last read:
	// credit back what was read before then, or nothing moves again.
	if s.sessionCreditLow(inFlight) && s.recvUnacked.Load() > 0 {
		s.flushSessionCredit()
	}
	st, err := s.lookup(h)
	if err != nil {
		return err
	}
	if st != nil {
		keep, err := st.admit(n)
		if err != nil {
			return err
		}
		if keep {
			if n == 0 {
				return nil
			}
			bb := getBuf(n)
			if err := s.fr.ReadPayload(h, bb.B); err != nil {
				putBuf(bb)
				return err
			}
			s.stats.bytesReceived.Add(uint64(n))
			st.deliver(bb)
			return nil
		}
	}
	// Nobody will read it: drop it and give the session credit back.
	if err := s.fr.Discard(h); err != nil {
		return err
	}
	s.stats.bytesReceived.Add(uint64(n))
	s.consumed(n)
	return nil
}

func (s *Session) handleOpen(id uint32) error {
	if !s.isPeerID(id) {
		return frame.SessionError(frame.CodeProtocol, "the peer opened stream %d, an ID of this side's parity", id)
	}
	if id <= s.lastPeerID {
		return frame.SessionError(frame.CodeProtocol, "the peer opened stream %d again or out of order (last opened: %d); stream IDs are never reused", id, s.lastPeerID)
	}
	s.lastPeerID = id
	if s.goAwaySent.Load() || int(s.numStreams.Load()) >= s.cfg.MaxConcurrentStreams {
		if err := s.ctrlFlooded(); err != nil {
			return err
		}
		s.queueReset(id, frame.CodeRefusedStream)
		return nil
	}
	st := newStream(s, id)
	s.streams.Store(id, st)
	s.numStreams.Add(1)
	select {
	case s.acceptCh <- st:
	default:
		st.remove()
		if err := s.ctrlFlooded(); err != nil {
			return err
		}
		s.queueReset(id, frame.CodeRefusedStream)
		return nil
	}
	if extra := s.cfg.InitialStreamWindow - frame.InitialStreamWindow; extra > 0 {
		s.queueWindowUpdate(id, extra)
	}
	return nil
}

// ctrlFlooded fails when the answers queued for the peer pass
// maxQueuedCtrl: the peer asks for more than it reads.
func (s *Session) ctrlFlooded() error {
	s.wmu.Lock()
	n := len(s.ctrl)
	s.wmu.Unlock()
	if n < maxQueuedCtrl {
		return nil
	}
	return frame.SessionError(frame.CodeProtocol, "the peer keeps sending frames that need an answer (PING, OPEN beyond the limits) without reading the answers; %d bytes of answers are queued", n)
}

func (s *Session) handleWindowUpdate(h frame.Header) error {
	inc := int64(h.Value)
	if inc == 0 {
		return frame.SessionError(frame.CodeProtocol, "WINDOW_UPDATE with a zero increment on stream %d", h.StreamID)
	}
	if h.StreamID == 0 {
		if s.sendCredit.Add(inc) > frame.MaxWindow {
			return frame.SessionError(frame.CodeFlowControl, "the peer granted session credit beyond %d", int64(frame.MaxWindow))
		}
		s.creditArrived()
		return nil
	}
	st, err := s.lookup(h)
	if st != nil {
		return st.grant(inc)
	}
	return err
}

// sendLoop writes whatever is queued: control frames, and DATA of streams
// whose Write found the connection busy. Batches are built and written
// under connMu, so frames leave in the order they were taken from the queue,
// whoever writes them.
func (s *Session) sendLoop() {
	defer s.loops.Done()
	defer func() {
		s.connMu.Lock()
		s.bw.releaseAll()
		s.connMu.Unlock()
	}()
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		for {
			s.connMu.Lock()
			if !s.bw.build() {
				s.connMu.Unlock()
				break
			}
			err := s.bw.write()
			s.connMu.Unlock()
			if err != nil {
				s.failWrite(err)
				return
			}
		}
	}
}

func (s *Session) failWrite(err error) {
	if !errors.Is(err, net.ErrClosed) {
		err = fmt.Errorf("mux: writing to the connection failed: %w", err)
	}
	s.fail(err)
}

// writeThrough writes one DATA frame straight from the caller's buffer, on
// the caller's goroutine, when the connection is free and nothing else is
// waiting to go out. That spares the copy into a queue buffer and the
// hand-off to sendLoop: on a 2-core VM each hand-off to a parked goroutine
// is a thread wake-up, the largest cost per message measured here. ok is
// false when the frame must be queued instead; fairness between streams is
// untouched, since the queue is used whenever any stream has data waiting.
func (s *Session) writeThrough(st *Stream, p []byte) (ok bool, err error) {
	if !s.connMu.TryLock() {
		return false, nil
	}
	defer s.connMu.Unlock()
	if !s.bw.buildThrough(st, p) {
		return false, nil
	}
	if err := s.bw.write(); err != nil {
		s.failWrite(err)
		return true, s.Err()
	}
	return true, nil
}

// batchWriter builds and writes one batch at a time. Its buffers are
// reused from batch to batch, so the steady path allocates nothing.
type batchWriter struct {
	s        *Session
	iov      net.Buffers
	out      net.Buffers // iov consumed by WriteTo; iov keeps the backing array
	hdrs     []byte      // headers of this batch's DATA/CLOSE/RESET frames
	ctrl     []byte      // control frames taken from the queue
	spare    []byte      // the other control buffer, handed back to the queue
	release  []*bytebufferpool.ByteBuffer
	rest     []*Stream
	flat     []byte // for connections without writev: the batch in one piece
	vectored bool
	frames   int
}

func newBatchWriter(s *Session) *batchWriter {
	_, tcp := s.conn.(*net.TCPConn)
	_, unix := s.conn.(*net.UnixConn)
	return &batchWriter{
		s:        s,
		hdrs:     make([]byte, 0, maxBatchFrames*(2*frame.HeaderSize+4)),
		spare:    make([]byte, 0, 4096),
		vectored: tcp || unix,
	}
}

// build takes queued frames into the batch; false if there were none.
func (w *batchWriter) build() bool {
	s := w.s
	w.reset()
	s.wmu.Lock()
	w.takeCtrl()
	budget := maxBatchBytes
	ready := s.ready
	i := 0
	w.rest = w.rest[:0]
	for ; i < len(ready) && budget > 0 && w.frames < maxBatchFrames; i++ {
		st := ready[i]
		ready[i] = nil
		if st.sqHead < len(st.sq) {
			bb := st.sq[st.sqHead]
			st.sq[st.sqHead] = nil
			st.sqHead++
			n := len(bb.B)
			st.queued.Add(-int64(n))
			start := len(w.hdrs)
			w.hdrs = frame.AppendData(w.hdrs, st.id, n)
			w.iov = append(w.iov, w.hdrs[start:], bb.B)
			w.release = append(w.release, bb)
			budget -= n
			w.frames++
			s.stats.bytesSent.Add(uint64(n))
			if st.sqHead == len(st.sq) {
				st.sq, st.sqHead = st.sq[:0], 0
			}
			st.wakeWriter()
		}
		if st.sqHead == len(st.sq) && st.finQueued && !st.finWritten {
			st.finWritten = true
			start := len(w.hdrs)
			w.hdrs = frame.AppendClose(w.hdrs, st.id)
			w.frames++
			if st.resetAfterFin {
				w.hdrs = frame.AppendReset(w.hdrs, st.id, frame.CodeCancel)
				w.frames++
			}
			w.iov = append(w.iov, w.hdrs[start:])
		}
		if st.sqHead < len(st.sq) {
			w.rest = append(w.rest, st)
		} else {
			st.inReady = false
		}
	}
	// Streams not reached keep their turn ahead of those just served.
	n := copy(ready, ready[i:])
	s.ready = append(ready[:n], w.rest...)
	s.wmu.Unlock()
	return len(w.iov) > 0
}

// reset empties the batch. connMu is held.
func (w *batchWriter) reset() {
	w.iov = w.iov[:0]
	w.hdrs = w.hdrs[:0]
	w.frames = 0
}

// takeCtrl moves the queued control frames into the batch. s.wmu is held.
func (w *batchWriter) takeCtrl() {
	s := w.s
	if len(s.ctrl) > 0 {
		w.ctrl, s.ctrl, w.spare = s.ctrl, w.spare[:0], nil
		w.iov = append(w.iov, w.ctrl)
		w.frames++ // counted as one; exact counts are not worth a parse
	}
}

// buildThrough makes a batch of the queued control frames and one DATA
// frame of p for st, if no stream has data queued (st included) and st is
// not half-closed. connMu is held.
func (w *batchWriter) buildThrough(st *Stream, p []byte) bool {
	s := w.s
	w.reset()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if len(s.ready) > 0 || st.inReady || st.finQueued {
		return false
	}
	w.takeCtrl()
	w.hdrs = frame.AppendData(w.hdrs, st.id, len(p))
	w.iov = append(w.iov, w.hdrs, p)
	w.frames++
	s.stats.bytesSent.Add(uint64(len(p)))
	return true
}

// write writes the batch and releases its buffers. connMu is held.
func (w *batchWriter) write() error {
	s := w.s
	s.prefaceSent = true // every session's first batch starts with it
	if s.cfg.WriteTimeout > 0 {
		if err := s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil {
			return err
		}
	}
	var err error
	if w.vectored {
		w.out = w.iov
		_, err = w.out.WriteTo(s.conn)
	} else {
		w.flat = w.flat[:0]
		for _, b := range w.iov {
			w.flat = append(w.flat, b...)
		}
		_, err = s.conn.Write(w.flat)
	}
	s.stats.batches.Add(1)
	s.stats.framesSent.Add(uint64(w.frames))
	w.releaseBuffers()
	return err
}

func (w *batchWriter) releaseBuffers() {
	for i, bb := range w.release {
		putBuf(bb)
		w.release[i] = nil
	}
	w.release = w.release[:0]
	for i := range w.iov {
		w.iov[i] = nil
	}
	if w.ctrl != nil {
		w.spare, w.ctrl = w.ctrl[:0], nil
	}
}

// releaseAll returns every pooled buffer still queued when the session ends.
func (w *batchWriter) releaseAll() {
	w.releaseBuffers()
	s := w.s
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, st := range s.ready {
		st.dropSendQueue()
	}
	s.ready = nil
}
