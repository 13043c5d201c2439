// Package mux multiplexes many reliable, ordered, flow-controlled streams
// over one net.Conn, the way sluice carries every tunnelled connection
// between an edge and an agent. It stands on its own: any program that has
// a net.Conn can use it in place of hashicorp/yamux or xtaci/smux.
//
// A Session reads frames in one goroutine and writes them in another,
// which runs only while there is something to write. The writer batches
// every queued frame into one writev: control frames first, then one DATA
// frame per stream in turn, so a bulk stream cannot starve a small request. Each stream has its own credit (a receive window that
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
)

// readBufferSize is the connection read buffer: large enough that a burst
// of small frames costs one system call.
const readBufferSize = 32 << 10

// maxQueuedCtrl bounds the control frames waiting for the writer. Only a
// peer that keeps sending frames that need an answer (PING, an OPEN to
// refuse) without reading the answers gets near it; the session ends
// rather than queue answers for it without bound.
const maxQueuedCtrl = 1 << 20

var errPeerClosed = errors.New("the peer closed the connection")

// Session is one multiplexed connection. Both ends can open and accept
// streams. A Session is also a net.Listener whose Accept yields the
// streams the peer opens.
//
// Lock order: a goroutine holding one of these locks takes only locks
// further down the list, never one above it.
//
//	Stream.writeMu  one Write's frames, kept together on the wire
//	Stream.mu       a stream's receive queue and state
//	connMu          writing to conn: the batch writer and prefaceSent
//	ka.mu           the keepalive timers
//	sendMu          the send queue: ctrl, sched and every stream's sq
//	writerMu        the writer goroutine's lifecycle (writerstate.go)
//
// Under Stream.mu, connMu is only tried (ctrlThrough's TryLock), never
// waited for. errMu, pingMu, the session send credit's lock (sessionSend)
// and a deadline's lock are leaves: nothing else is taken while one is
// held.
type Session struct {
	conn   net.Conn
	cfg    Config
	client bool
	fr     *frame.Reader
	in     heardReader // the connection, read through fr

	streams    sync.Map      // stream ID -> *Stream
	nextID     atomic.Uint32 // next ID this side will open
	lastPeerID uint32        // highest ID the peer opened; recvLoop only
	// The protocol version and SETTINGS (settings.go). openWindow is the
	// credit a stream this side opens starts with, as the peer announced
	// it (guarded by sendMu); acceptWindow the credit the peer assumes in the
	// streams it opens, as it acknowledged it; announced is what this side
	// announced last, settingsPending how many of its SETTINGS await the
	// peer's acknowledgement (the three recvLoop only).
	version         atomic.Uint32
	openWindow      int64
	acceptWindow    int64
	announced       int64
	settingsPending int
	wanWin          atomic.Int64 // the window new streams get on this path (wanWindow), 0 if none
	numStreams      atomic.Int32
	acceptCh        chan *Stream
	handler         atomic.Pointer[func(*Stream)] // HandleStreams; nil: streams wait in acceptCh

	// The send queue, guarded by sendMu: control frames, the streams with
	// frames in the scheduler, and the GOAWAY that fail queues as the
	// session's last frame.
	sendMu  sync.Mutex
	ctrl    []byte
	sched   writeScheduler
	lastMsg []byte
	// The writer goroutine, running only while there is work (sendLoop);
	// its state is guarded by writerMu.
	writerMu sync.Mutex
	writer   writerState
	wake     chan struct{} // wakes a sendLoop waiting for work

	send     *sessionSend // credit the peer granted to the session as a whole
	recv     sessionRecv  // the session receive window
	lim      windowLimits // bounds of every stream's receive window
	buffered atomic.Int64 // received and not yet read, all streams

	goAwaySent atomic.Bool
	refusing   atomic.Bool // RefuseStreams was called
	goAwayRecv atomic.Bool
	goAwayCh   chan struct{} // closed when the peer's first GOAWAY arrives
	remoteCode atomic.Uint32 // error code of the peer's GOAWAY, if any

	done      chan struct{}
	closeOnce sync.Once
	errMu     sync.Mutex
	err       error
	// lastWriteBy closes conn if the last write has not done so within
	// lastWriteWait of the session's end; set by fail before the last
	// write can start.
	lastWriteBy *time.Timer
	connMu      sync.Mutex   // held by whoever builds a batch and writes it to conn
	bw          *batchWriter // the batch being built and written; guarded by connMu
	// prefaceSent: the preface has gone out (guarded by connMu). A GOAWAY
	// written before the first batch must bring the preface along, or the
	// peer reads the GOAWAY as a garbled preface and never learns why.
	prefaceSent bool
	loops       sync.WaitGroup

	// Keepalive and RTT.
	start time.Time
	rtt   atomic.Int64 // latest sample
	rttAt atomic.Int64 // when it was taken, as time since start
	// lastProbe is when the last PING that times the queue went out
	// (probeDue), as time since start.
	lastProbe atomic.Int64
	minRTT    atomic.Int64 // smallest sample; what window auto-tuning uses
	probes    atomic.Int32 // startup pings answered so far
	pingMu    sync.Mutex
	pingSeq   uint64
	pings     map[uint64]chan time.Duration
	ka        keepalive

	stats counters
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
	cfg = cfg.withDefaults()
	s := &Session{
		conn:     conn,
		cfg:      cfg,
		client:   client,
		recv:     sessionRecv{window: int64(cfg.SessionWindow)},
		acceptCh: make(chan *Stream, cfg.AcceptBacklog),
		sched:    &roundRobin{},
		send:     newSessionSend(frame.InitialSessionWindow),
		lim:      windowLimits{initial: int64(cfg.InitialStreamWindow), max: int64(cfg.MaxStreamWindow)},
		done:     make(chan struct{}),
		goAwayCh: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		start:    time.Now(),
		pings:    make(map[uint64]chan time.Duration),

		openWindow:   frame.InitialStreamWindow,
		acceptWindow: frame.InitialStreamWindow,
		announced:    frame.InitialStreamWindow,
	}
	s.bw = newBatchWriter(s)
	s.in.r, s.in.vec, s.in.start = conn, newVectorConn(conn), s.start
	s.fr = frame.NewReader(&s.in, readBufferSize)
	if client {
		s.nextID.Store(1)
	} else {
		s.nextID.Store(2)
	}
	// The first batch: preface, the version offer, the session credit
	// beyond the protocol's initial amount, and a ping that seeds the RTT
	// estimate.
	s.ctrl = frame.AppendPreface(make([]byte, 0, 256))
	s.ctrl = frame.AppendVersionOffer(s.ctrl)
	if extra := cfg.SessionWindow - frame.InitialSessionWindow; extra > 0 {
		s.ctrl = frame.AppendWindowUpdate(s.ctrl, 0, extra)
	}
	s.ctrl = frame.AppendPing(s.ctrl, false, s.newPing(nil))
	s.loops.Add(1)
	go s.recvLoop()
	s.signalWriter()
	if cfg.keepAlive() {
		s.startKeepalive()
	}
	return s, nil
}

// OpenStream opens a new stream. It does not wait for the peer: data
// written right away travels behind the OPEN frame. If the peer refuses the
// stream, the stream's calls fail with ErrStreamRefused.
func (s *Session) OpenStream(ctx context.Context) (*Stream, error) {
	st, err := s.openStream(ctx)
	if err != nil {
		return nil, err
	}
	s.signalWriter()
	return st, nil
}

// OpenStreamWith opens a new stream and writes first on it, as OpenStream
// followed by Write would, but when the connection is free the OPEN and
// the first DATA frame go out together in one write on the caller's
// goroutine, with no wake-up of the session's writer: a new stream whose
// opener has something to say at once (a header, a request) costs one
// system call. If the write fails the stream is reset and the error
// returned.
func (s *Session) OpenStreamWith(ctx context.Context, first []byte) (*Stream, error) {
	st, err := s.openStream(ctx)
	if err != nil {
		return nil, err
	}
	// The OPEN waits in the control queue for the first DATA frame, which
	// writes it through or queues itself and wakes the writer. A Write
	// that would wait for session credit first (a large one also for
	// credit above the reserve it leaves to small ones) must not hold the
	// OPEN back meanwhile.
	need := int64(min(len(first), s.cfg.MaxFramePayload))
	if len(first) == 0 || s.send.credit.Load() < need+creditFloor(need) {
		s.signalWriter()
	}
	if _, err := st.Write(first); err != nil {
		s.signalWriter()
		st.Reset()
		return nil, err
	}
	return st, nil
}

// openStream takes the next ID and queues the stream's OPEN; the caller
// wakes the writer, or writes through it.
func (s *Session) openStream(ctx context.Context) (*Stream, error) {
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
	// The ID is taken under the send queue's lock, in the same step that
	// queues the OPEN: OPENs must reach the peer in ID order, and two
	// goroutines opening at once would otherwise queue theirs the other
	// way round, which the peer must treat as a protocol error.
	s.sendMu.Lock()
	id := s.nextID.Load()
	if id > math.MaxInt32 {
		s.sendMu.Unlock()
		return nil, fmt.Errorf("mux: stream IDs are used up on this session; open a new session: %w", ErrSessionClosed)
	}
	s.nextID.Store(id + 2)
	// The peer learns the stream's window from the WINDOW_UPDATE right
	// behind its OPEN, before any data for it can leave.
	win := s.streamWindow()
	st := newStream(s, id, win, s.openWindow)
	s.streams.Store(id, st)
	s.numStreams.Add(1)
	s.ctrl = frame.AppendOpen(s.ctrl, id)
	if extra := win - frame.InitialStreamWindow; extra > 0 {
		s.ctrl = frame.AppendWindowUpdate(s.ctrl, id, uint32(extra))
	}
	s.sendMu.Unlock()
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

// RefuseStreams makes the session refuse every stream the peer opens from
// now on (a RESET with REFUSED_STREAM, as beyond MaxConcurrentStreams)
// instead of queueing it for AcceptStream, and resets those already queued.
// A side that takes a fixed set of streams from its peer (an edge takes
// only the agent's control stream) calls it once it has them, and needs
// no goroutine that accepts and resets whatever else arrives.
func (s *Session) RefuseStreams() {
	s.refusing.Store(true)
	s.resetQueued()
}

// resetQueued resets the streams waiting for AcceptStream.
func (s *Session) resetQueued() {
	for {
		select {
		case st := <-s.acceptCh:
			st.Reset()
		default:
			return
		}
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

// GoingAway is closed when the peer sends GOAWAY: it opens no new stream
// and will end the session once its streams finish. A client that can
// reach another server opens a session there without waiting for the end.
func (s *Session) GoingAway() <-chan struct{} { return s.goAwayCh }

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
		code, tell := goAwayCode(err)
		if tell {
			// Tell the peer why: the GOAWAY is the last frame the session
			// writes (lastWrite), after the batch being written, if any.
			// A writer stuck in a write (the peer reads nothing) makes
			// the connection of no use anyway, so the wait is bounded:
			// the connection is closed after lastWriteWait regardless.
			s.sendMu.Lock()
			s.lastMsg = frame.AppendGoAway(nil, code)
			s.sendMu.Unlock()
			s.lastWriteBy = time.AfterFunc(lastWriteWait, func() { _ = s.conn.Close() })
		}
		close(s.done)
		if !tell {
			_ = s.conn.Close()
		}
		s.stopKeepalive()
		s.endWriter()
	})
}

// goAwayCode is the code of the GOAWAY that tells the peer why the session
// ended with err, and whether one is sent: not after a failed write, nor
// once the peer has closed the connection.
func goAwayCode(err error) (frame.Code, bool) {
	var fe *frame.Error
	var re *readError
	switch {
	case err == ErrSessionClosed:
		return frame.CodeNoError, true
	case errors.As(err, &fe):
		return fe.Code, true
	case err == ErrKeepAliveTimeout:
		return frame.CodeKeepalive, true
	case errors.As(err, &re):
		// Reading failed on this side (a TLS record that does not
		// decrypt, say) while writing may still work: the peer learns
		// that the fault is here.
		return frame.CodeInternal, true
	}
	return frame.CodeNoError, false
}

// queueCtrl appends a control frame to the writer's queue.
func (s *Session) queueCtrl(appendFrame func([]byte) []byte) {
	s.sendMu.Lock()
	s.ctrl = appendFrame(s.ctrl)
	s.sendMu.Unlock()
	s.signalWriter()
}

func (s *Session) queueReset(id uint32, code frame.Code) {
	s.sendMu.Lock()
	s.ctrl = frame.AppendReset(s.ctrl, id, code)
	s.sendMu.Unlock()
	s.signalWriter()
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
	for first := true; err == nil; first = false {
		var h frame.Header
		h, err = s.fr.Next()
		if err != nil {
			break
		}
		s.stats.framesReceived.Add(1)
		if first && s.negotiate(h) {
			continue
		}
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
	default:
		err = &readError{err}
	}
	s.fail(err)
	s.kickForwarders()
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
		s.remoteCode.Store(uint32(h.Value))
		if !s.goAwayRecv.Swap(true) {
			close(s.goAwayCh)
		}
	case frame.TypeSettings:
		return s.handleSettings(h)
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
	ok, flush := s.recv.received(int64(n))
	if !ok {
		return frame.SessionError(frame.CodeFlowControl, "the peer sent %d bytes beyond the session window of %d", s.recv.over(), s.cfg.SessionWindow)
	}
	// Data for stalled streams can use up the window after the last read:
	// credit back what was read before then, or nothing moves again.
	if flush {
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
	if s.goAwaySent.Load() || s.refusing.Load() || int(s.numStreams.Load()) >= s.cfg.MaxConcurrentStreams {
		if err := s.ctrlFlooded(); err != nil {
			return err
		}
		s.queueReset(id, frame.CodeRefusedStream)
		return nil
	}
	// The peer sent this OPEN assuming the credit it had acknowledged
	// last; a larger window than that is granted on top.
	win := max(s.streamWindow(), s.acceptWindow)
	st := newStream(s, id, win, frame.InitialStreamWindow)
	s.streams.Store(id, st)
	s.numStreams.Add(1)
	if h := s.handler.Load(); h != nil {
		s.grantAccepted(st, win)
		(*h)(st)
		return nil
	}
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
	if s.refusing.Load() {
		// RefuseStreams ran between the check above and the queueing.
		s.resetQueued()
		return nil
	}
	s.grantAccepted(st, win)
	if s.handler.Load() != nil {
		// HandleStreams ran between the look above and the queueing, and
		// may have drained the queue before this stream was in it.
		s.handQueued()
	}
	return nil
}

// grantAccepted sends the credit of a stream the peer opened beyond what
// the peer assumes it has.
func (s *Session) grantAccepted(st *Stream, win int64) {
	if extra := win - s.acceptWindow; extra > 0 {
		s.queueWindowUpdate(st.id, uint32(extra))
	}
}

// HandleStreams makes the session hand every stream the peer opens from
// now on to handle, instead of queueing it for AcceptStream; streams
// already queued are handed over at once. handle runs on the session's
// reader (and, for those queued, on the caller's goroutine, and possibly
// both at once), so it must not block: it starts whatever serves the
// stream. A side that serves every stream the same way saves the wake-up
// of a goroutine waiting in AcceptStream for each: on a busy agent that is
// a thread wake-up per public connection. It may be called once.
func (s *Session) HandleStreams(handle func(*Stream)) {
	s.handler.Store(&handle)
	s.handQueued()
}

// handQueued hands the streams waiting for AcceptStream to the handler.
func (s *Session) handQueued() {
	h := s.handler.Load()
	for {
		select {
		case st := <-s.acceptCh:
			(*h)(st)
		default:
			return
		}
	}
}

// ctrlFlooded fails when the answers queued for the peer pass
// maxQueuedCtrl: the peer asks for more than it reads.
func (s *Session) ctrlFlooded() error {
	s.sendMu.Lock()
	n := len(s.ctrl)
	s.sendMu.Unlock()
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
		return s.grantSession(inc)
	}
	st, err := s.lookup(h)
	if st != nil {
		return st.grant(inc)
	}
	return err
}
