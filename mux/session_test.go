package mux

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice/frame"
	"go.uber.org/goleak"
)

// tstPool is shared random content. Each stream sends a slice of it at an
// offset of its own, so a byte delivered to the wrong stream, or in the
// wrong order, changes that stream's checksum.
var tstPool = func() []byte {
	b := make([]byte, 2<<20)
	r := rand.NewChaCha8([32]byte{'s', 'l', 'u', 'i', 'c', 'e'})
	_, _ = r.Read(b)
	return b
}()

// tstSize draws a stream's size, between 1 byte and 1 MiB, log-uniformly so
// that every scale from a few bytes to the maximum is exercised. Without
// the race detector the whole range is used (mean about 75 KiB: 1,000
// streams both ways move about 150 MB). Under -race, which copies bytes
// several times slower, one stream in two stays below 64 KiB (mean about
// 40 KiB, about 80 MB in all) so the test stays within a few seconds on two
// cores; the other half still spans the whole range up to 1 MiB.
func tstSize(r *rand.Rand) int {
	limit := float64(1 << 20)
	if tstRace && r.IntN(2) == 0 {
		limit = 64 << 10
	}
	return int(math.Exp(r.Float64() * math.Log(limit)))
}

// tstSlice picks n bytes of tstPool at a random offset.
func tstSlice(r *rand.Rand, n int) []byte {
	off := r.IntN(len(tstPool) - n + 1)
	return tstPool[off : off+n]
}

// tstChecksumServer is the server side of TestConcurrentStreamsChecksummed.
// While it reads the client's bytes it sends its own:
//
//	[8-byte length m][m bytes][sha256 of those m bytes]
//
// and once the client has half-closed it reports what it received:
//
//	[8-byte count][sha256 of everything received]
func tstChecksumServer(st *Stream) error {
	defer st.Close()
	r := rand.New(rand.NewPCG(uint64(st.ID()), 42))
	out := tstSlice(r, tstSize(r))
	sent := make(chan error, 1)
	go func() {
		msg := binary.BigEndian.AppendUint64(nil, uint64(len(out)))
		sum := sha256.Sum256(out)
		if _, err := st.Write(msg); err != nil {
			sent <- err
			return
		}
		if _, err := st.Write(out); err != nil {
			sent <- err
			return
		}
		_, err := st.Write(sum[:])
		sent <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, st)
	if werr := <-sent; werr != nil {
		return fmt.Errorf("server stream %d: writing: %w", st.ID(), werr)
	}
	if err != nil {
		return fmt.Errorf("server stream %d: reading after %d bytes: %w", st.ID(), n, err)
	}
	tail := binary.BigEndian.AppendUint64(nil, uint64(n))
	tail = h.Sum(tail)
	if _, err := st.Write(tail); err != nil {
		return fmt.Errorf("server stream %d: writing the receipt: %w", st.ID(), err)
	}
	return st.CloseWrite()
}

// tstChecksumClient sends in and checks what tstChecksumServer sends back.
func tstChecksumClient(st *Stream, in []byte) error {
	defer st.Close()
	sent := make(chan error, 1)
	go func() {
		if _, err := st.Write(in); err != nil {
			sent <- err
			return
		}
		sent <- st.CloseWrite()
	}()
	got, rerr := io.ReadAll(st)
	if werr := <-sent; werr != nil {
		return fmt.Errorf("client stream %d: writing %d bytes: %w", st.ID(), len(in), werr)
	}
	if rerr != nil {
		return fmt.Errorf("client stream %d: reading after %d bytes: %w", st.ID(), len(got), rerr)
	}
	if len(got) < 8 {
		return fmt.Errorf("client stream %d: only %d bytes came back", st.ID(), len(got))
	}
	m := binary.BigEndian.Uint64(got)
	if want := 8 + m + 32 + 8 + 32; uint64(len(got)) != want {
		return fmt.Errorf("client stream %d: %d bytes came back, want %d (server data of %d bytes plus checksums): data lost or duplicated", st.ID(), len(got), want, m)
	}
	data, rest := got[8:8+m], got[8+m:]
	if sum := sha256.Sum256(data); !bytes.Equal(sum[:], rest[:32]) {
		return fmt.Errorf("client stream %d: the server's %d bytes arrived corrupted (sha256 mismatch)", st.ID(), m)
	}
	if n := binary.BigEndian.Uint64(rest[32:40]); n != uint64(len(in)) {
		return fmt.Errorf("client stream %d: the server received %d bytes, the client sent %d", st.ID(), n, len(in))
	}
	if sum := sha256.Sum256(in); !bytes.Equal(sum[:], rest[40:]) {
		return fmt.Errorf("client stream %d: the client's %d bytes arrived corrupted at the server (sha256 mismatch)", st.ID(), len(in))
	}
	return nil
}

func TestConcurrentStreamsChecksummed(t *testing.T) {
	const streams = 1000
	c, s := sessionPair(t, DefaultConfig())
	serverErrs := make(chan error, streams)
	tstServe(t, s, func(st *Stream) {
		_ = st.SetDeadline(time.Now().Add(3 * tstTimeout))
		if err := tstChecksumServer(st); err != nil {
			serverErrs <- err
		}
	})

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	inputs := make([][]byte, streams)
	total := 0
	for i := range inputs {
		inputs[i] = tstSlice(r, tstSize(r))
		total += len(inputs[i])
	}
	// Make sure the extremes are there whatever the draw.
	inputs[0], inputs[1], inputs[2] = tstPool[:1<<20], tstPool[5:6], nil

	var wg sync.WaitGroup
	errs := make(chan error, streams)
	start := make(chan struct{})
	for i := range inputs {
		st, err := c.OpenStream(context.Background())
		if err != nil {
			t.Fatalf("OpenStream %d of %d: %v", i+1, streams, err)
		}
		_ = st.SetDeadline(time.Now().Add(3 * tstTimeout))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start // all 1,000 streams are open before any data moves
			if err := tstChecksumClient(st, inputs[i]); err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	tstEventually(t, "every server stream to finish", func() bool { return s.NumStreams() == 0 && c.NumStreams() == 0 })
	close(serverErrs)
	for err := range serverErrs {
		t.Error(err)
	}
	cs, ss := c.Stats(), s.Stats()
	t.Logf("%d streams, client sent %d bytes, server sent %d bytes; client batches %d (%.1f frames each)", streams, cs.BytesSent, ss.BytesSent, cs.Batches, float64(cs.FramesSent)/float64(cs.Batches))
	if cs.BytesSent != ss.BytesReceived || ss.BytesSent != cs.BytesReceived {
		t.Errorf("stats disagree: client sent %d, server received %d; server sent %d, client received %d", cs.BytesSent, ss.BytesReceived, ss.BytesSent, cs.BytesReceived)
	}
}

// TestStatsConsistent checks the counters after a transfer whose size is
// known exactly on both sides.
func TestStatsConsistent(t *testing.T) {
	c, s := sessionPair(t, DefaultConfig())
	const up, down = 2<<20 - 3, 1<<20 + 5
	tstServe(t, s, func(st *Stream) {
		defer st.Close()
		if _, err := io.Copy(io.Discard, st); err != nil {
			return
		}
		_, _ = st.Write(tstPool[:down])
		_ = st.CloseWrite()
	})
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetDeadline(time.Now().Add(tstTimeout))
	if _, err := st.Write(tstPool[:up]); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	n, err := io.Copy(io.Discard, st)
	if err != nil || n != down {
		t.Fatalf("read %d bytes (err %v), want %d", n, err, down)
	}
	st.Close()
	tstEventually(t, "both sides to forget the stream", func() bool { return c.NumStreams() == 0 && s.NumStreams() == 0 })

	cs, ss := c.Stats(), s.Stats()
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"client BytesSent", cs.BytesSent, up},
		{"server BytesReceived", ss.BytesReceived, up},
		{"server BytesSent", ss.BytesSent, down},
		{"client BytesReceived", cs.BytesReceived, down},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	for _, side := range []struct {
		name string
		st   Stats
	}{{"client", cs}, {"server", ss}} {
		if side.st.Batches == 0 {
			t.Errorf("%s: Batches = 0 after a transfer", side.name)
		}
		if side.st.FramesSent < side.st.Batches {
			t.Errorf("%s: FramesSent (%d) < Batches (%d): a batch without a frame", side.name, side.st.FramesSent, side.st.Batches)
		}
		if side.st.FramesReceived == 0 {
			t.Errorf("%s: FramesReceived = 0 after a transfer", side.name)
		}
		if side.st.Streams != 0 {
			t.Errorf("%s: Stats.Streams = %d after every stream closed", side.name, side.st.Streams)
		}
		if side.st.RecvBuffered != 0 {
			t.Errorf("%s: RecvBuffered = %d after everything was read", side.name, side.st.RecvBuffered)
		}
	}
}

// TestOpenCloseManyStreamsBaseline opens and closes 1,000 streams, then the
// sessions, and checks that nothing is left: no stream in the tables, no
// buffered byte, no goroutine.
func TestOpenCloseManyStreamsBaseline(t *testing.T) {
	const streams = 1000
	a, b := tcpPair(t)
	c, s := tstSessions(t, a, b, DefaultConfig(), DefaultConfig())
	var accepted sync.WaitGroup
	var handled atomic.Int32
	accepted.Add(1)
	go func() {
		defer accepted.Done()
		for {
			st, err := s.AcceptStream(context.Background())
			if err != nil {
				return
			}
			// Read what the client wrote, then close: either at once,
			// or after reading to the end.
			buf := make([]byte, 16)
			_, _ = io.ReadFull(st, buf)
			if st.ID()%4 == 3 {
				_, _ = io.Copy(io.Discard, st)
			}
			st.Close()
			// A stream the peer has closed and reset leaves the table at
			// once, though what it sent stays readable; count the
			// streams served to know when all data has been read.
			handled.Add(1)
		}
	}()
	for i := range streams {
		st, err := c.OpenStream(context.Background())
		if err != nil {
			t.Fatalf("OpenStream %d: %v", i, err)
		}
		if _, err := st.Write(tstPool[:16]); err != nil {
			t.Fatalf("Write on stream %d: %v", st.ID(), err)
		}
		st.Close()
	}
	tstEventually(t, "NumStreams()==0 on both sides and every stream served", func() bool {
		return c.NumStreams() == 0 && s.NumStreams() == 0 && handled.Load() == streams
	})
	for _, x := range []*Session{c, s} {
		if st := x.Stats(); st.RecvBuffered != 0 {
			t.Errorf("RecvBuffered = %d with no stream open", st.RecvBuffered)
		}
		// The counter and the table agree, and the writer holds nothing.
		left := 0
		x.streams.Range(func(_, _ any) bool { left++; return true })
		if left != 0 {
			t.Errorf("%d streams left in the table with NumStreams() == 0", left)
		}
		tstEventually(t, "the writer's queues to drain", func() bool {
			x.sendMu.Lock()
			defer x.sendMu.Unlock()
			return x.sched.Len() == 0
		})
	}
	c.Close()
	s.Close()
	accepted.Wait()
	if c.NumStreams() != 0 || s.NumStreams() != 0 {
		t.Errorf("NumStreams after Close: client %d, server %d", c.NumStreams(), s.NumStreams())
	}
	goleak.VerifyNone(t)
}

func TestGoAwayFinishesExistingRefusesNew(t *testing.T) {
	c, s := sessionPair(t, DefaultConfig())
	tstServe(t, s, tstEcho)
	ctx := context.Background()
	st, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetDeadline(time.Now().Add(tstTimeout))
	// The stream is known to the server before the GOAWAY.
	if _, err := st.Write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(st, buf); err != nil {
		t.Fatalf("echo before GOAWAY: %v", err)
	}

	select {
	case <-c.GoingAway():
		t.Fatal("GoingAway closed before the peer sent GOAWAY")
	default:
	}
	if err := s.GoAway(); err != nil {
		t.Fatalf("GoAway: %v", err)
	}
	select {
	case <-c.GoingAway():
	case <-time.After(tstTimeout):
		t.Fatal("GoingAway did not close after the peer's GOAWAY")
	}
	tstEventually(t, "the client to see the GOAWAY", func() bool {
		_, err := c.OpenStream(ctx)
		return errors.Is(err, ErrGoAway)
	})
	if _, err := s.OpenStream(ctx); err == nil {
		t.Error("the side that sent GOAWAY opened a new stream")
	}

	// The existing stream carries on in both directions. The echo
	// needs the reply read while the request is written.
	sent := tstCall(func() error {
		if _, err := st.Write(tstPool[:1<<20]); err != nil {
			return fmt.Errorf("Write on an existing stream after GOAWAY: %w", err)
		}
		return st.CloseWrite()
	})
	got, err := io.ReadAll(st)
	if err := tstRecv(t, sent, "the Write to finish"); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("reading the echo after GOAWAY: %v", err)
	}
	if !bytes.Equal(got, tstPool[:1<<20]) {
		t.Fatalf("echo after GOAWAY: %d bytes, corrupted or short", len(got))
	}
	if c.Err() != nil || s.Err() != nil {
		t.Fatalf("GOAWAY ended a session: client %v, server %v", c.Err(), s.Err())
	}
}

// tstGateConn holds back Reads until opened, so a test can make the
// session act on a stale view of its peer.
type tstGateConn struct {
	net.Conn
	gate chan struct{}
}

func (g *tstGateConn) Read(p []byte) (int, error) {
	<-g.gate
	return g.Conn.Read(p)
}

func TestGoAwayRefusesStreamOpenedAnyway(t *testing.T) {
	a, b := tcpPair(t)
	gated := &tstGateConn{Conn: a, gate: make(chan struct{})}
	c, s := tstSessions(t, gated, b, DefaultConfig(), DefaultConfig())
	var once sync.Once
	open := func() { once.Do(func() { close(gated.gate) }) }
	t.Cleanup(func() { open(); c.Close(); s.Close() })
	tstServe(t, s, tstEcho)

	if err := s.GoAway(); err != nil {
		t.Fatal(err)
	}
	// The client cannot have read the GOAWAY yet, so it opens anyway.
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatalf("OpenStream before the GOAWAY was read: %v", err)
	}
	_ = st.SetDeadline(time.Now().Add(tstTimeout))
	_, _ = st.Write([]byte("hello"))
	open()
	_, err = st.Read(make([]byte, 8))
	if !errors.Is(err, ErrStreamRefused) {
		t.Fatalf("Read on a stream opened after the peer's GOAWAY: %v; want ErrStreamRefused", err)
	}
	if _, err := c.OpenStream(context.Background()); !errors.Is(err, ErrGoAway) {
		t.Fatalf("OpenStream after the GOAWAY was read: %v; want ErrGoAway", err)
	}
}

func TestRefuseStreamsResetsQueuedAndRefusesNew(t *testing.T) {
	c, s := tstPair(t, DefaultConfig(), DefaultConfig())
	queued, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = queued.SetDeadline(time.Now().Add(tstTimeout))
	_, _ = queued.Write([]byte("hello"))
	tstEventually(t, "the server to hold the stream in its accept backlog", func() bool { return s.NumStreams() == 1 })
	s.RefuseStreams()
	if _, err := queued.Read(make([]byte, 8)); !errors.Is(err, ErrStreamReset) {
		t.Fatalf("Read on a stream queued when the peer began refusing: %v; want ErrStreamReset", err)
	}
	later, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = later.SetDeadline(time.Now().Add(tstTimeout))
	_, _ = later.Write([]byte("hello"))
	if _, err := later.Read(make([]byte, 8)); !errors.Is(err, ErrStreamRefused) {
		t.Fatalf("Read on a stream opened after RefuseStreams: %v; want ErrStreamRefused", err)
	}
	if n := s.NumStreams(); n != 0 {
		t.Fatalf("the refusing side still counts %d streams", n)
	}
	// The session itself carries on: this side can still open streams.
	tstServe(t, c, tstEcho)
	st, err := s.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetDeadline(time.Now().Add(tstTimeout))
	if _, err := st.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(st, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo on a stream the refusing side opened: %q, %v", buf, err)
	}
}

func TestStreamLimitsRefuse(t *testing.T) {
	tests := []struct {
		name          string
		maxStreams    int
		backlog       int
		accept        bool // the server accepts (and holds) every stream
		open, refused int
	}{
		{"MaxConcurrentStreams with accepted streams", 5, 100, true, 8, 3},
		{"MaxConcurrentStreams with a backlog", 4, 100, false, 6, 2},
		{"AcceptBacklog", 100, 3, false, 7, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scfg := DefaultConfig()
			scfg.MaxConcurrentStreams = tc.maxStreams
			scfg.AcceptBacklog = tc.backlog
			c, s := tstPair(t, DefaultConfig(), scfg)
			if tc.accept {
				tstServe(t, s, func(st *Stream) {
					_, _ = io.Copy(io.Discard, st) // hold it open until the end
				})
			}
			// Open one at a time and wait for the stream to be judged, so
			// that which ones are refused does not depend on timing.
			var streams []*Stream
			refused := 0
			for i := range tc.open {
				st, err := c.OpenStream(context.Background())
				if err != nil {
					t.Fatalf("OpenStream %d: %v", i, err)
				}
				streams = append(streams, st)
				// Frames are handled in order on both sides, so when a
				// PING sent after the OPEN is answered, the server's
				// verdict on the OPEN (a RESET, if any, queued before
				// the PONG) has been handled here.
				if _, err := c.Ping(context.Background()); err != nil {
					t.Fatalf("Ping: %v", err)
				}
				_ = st.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				_, err = st.Read(make([]byte, 1))
				switch {
				case errors.Is(err, ErrStreamRefused):
					refused++
					if i < tc.open-tc.refused {
						t.Errorf("stream %d of %d refused (%v); the limits allow it", i+1, tc.open, err)
					}
				case errors.Is(err, ErrTimeout):
					if i >= tc.open-tc.refused {
						t.Errorf("stream %d of %d was not refused; the limits do not allow it", i+1, tc.open)
					}
				default:
					t.Fatalf("Read on stream %d: %v; want a timeout or ErrStreamRefused", i+1, err)
				}
			}
			if refused != tc.refused {
				t.Errorf("%d streams refused, want %d", refused, tc.refused)
			}
			// A refused stream's Write fails too, and nothing hangs.
			last := streams[len(streams)-1]
			_ = last.SetWriteDeadline(time.Now().Add(tstTimeout))
			if _, err := last.Write([]byte("x")); !errors.Is(err, ErrStreamRefused) {
				t.Errorf("Write on a refused stream: %v; want ErrStreamRefused", err)
			}
			if c.Err() != nil || s.Err() != nil {
				t.Errorf("a refusal ended a session: client %v, server %v", c.Err(), s.Err())
			}
		})
	}
}

func TestOpenStreamLocalLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxConcurrentStreams = 2
	c, _ := tstPair(t, cfg, DefaultConfig())
	for range 2 {
		if _, err := c.OpenStream(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.OpenStream(context.Background()); !errors.Is(err, ErrStreamRefused) {
		t.Fatalf("third OpenStream with MaxConcurrentStreams=2: %v; want ErrStreamRefused", err)
	}
}

// TestKeepAliveDetectsSilentPeer: a peer that reads but sends nothing is
// given up at the keepalive timeout, blocked calls return, and the peer is
// told why. The clock is the bubble's (testing/synctest): no real wait.
func TestKeepAliveDetectsSilentPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.KeepAliveInterval = 50 * time.Millisecond
		cfg.KeepAliveTimeout = 200 * time.Millisecond
		sess, raw := tstPipeRawPair(t, true, cfg)
		// The raw peer sends its preface and then nothing, though it reads.
		raw.send(t, frame.AppendPreface(nil))
		start := time.Now()
		blocked := tstCall(func() error {
			_, err := sess.AcceptStream(context.Background())
			return err
		})
		err := tstWaitDone(t, sess, "the peer went silent")
		took := time.Since(start)
		if !errors.Is(err, ErrKeepAliveTimeout) {
			t.Fatalf("Session.Err() = %v; want ErrKeepAliveTimeout", err)
		}
		// The check runs on every ping tick, so the end comes at most one
		// interval after the timeout.
		if limit := cfg.KeepAliveTimeout + cfg.KeepAliveInterval; took > limit {
			t.Errorf("the silent peer was detected after %s; the configured timeout is %s", took, cfg.KeepAliveTimeout)
		}
		if took < cfg.KeepAliveTimeout {
			t.Errorf("the session ended after %s, before the keepalive timeout of %s", took, cfg.KeepAliveTimeout)
		}
		if err := tstRecv(t, blocked, "AcceptStream to return"); !errors.Is(err, ErrKeepAliveTimeout) {
			t.Errorf("blocked AcceptStream returned %v; want ErrKeepAliveTimeout", err)
		}
		<-raw.done
		// The peer reads everything, so the GOAWAY must reach it.
		if !raw.sawGoAway.Load() {
			t.Errorf("no GOAWAY reached the silent peer (it ended with %v)", raw.readErr)
		} else if code := raw.goAway.Load(); code != uint32(frame.CodeKeepalive) {
			t.Errorf("GOAWAY code %d; want KEEPALIVE_TIMEOUT (%d)", code, frame.CodeKeepalive)
		}
	})
}

// TestKeepAliveHealthyPeerMeasuresRTT: an idle peer that answers pings
// lives on past many timeouts, and both ends learn the round trip.
func TestKeepAliveHealthyPeerMeasuresRTT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.KeepAliveInterval = 50 * time.Millisecond
		cfg.KeepAliveTimeout = time.Second
		c, s := tstPipePair(t, cfg, cfg)
		rtt, err := c.Ping(context.Background())
		if err != nil {
			t.Fatalf("Ping: %v", err)
		}
		if rtt <= 0 || c.RTT() <= 0 || c.Stats().RTT <= 0 {
			t.Fatalf("after a Ping: Ping = %s, RTT() = %s, Stats().RTT = %s; all must be > 0", rtt, c.RTT(), c.Stats().RTT)
		}
		// More than a timeout passes on an idle but answering peer, checked
		// at every one of some thirty pings: the session must stay up.
		tstAdvance(cfg.KeepAliveTimeout * 3 / 2)
		if c.Err() != nil || s.Err() != nil {
			t.Fatalf("keepalive ended a healthy idle session: client %v, server %v", c.Err(), s.Err())
		}
		if s.RTT() <= 0 {
			t.Errorf("server RTT() = %s after several keepalive rounds; want > 0", s.RTT())
		}
	})
}

func TestPingContextCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sess, raw := tstPipeRawPair(t, true, DefaultConfig())
		raw.send(t, frame.AppendPreface(nil))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := sess.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Ping to a peer that never answers: %v; want context.DeadlineExceeded", err)
		}
		if sess.Err() != nil {
			t.Fatalf("an unanswered Ping ended the session: %v", sess.Err())
		}
	})
}

// TestConcurrentOpenStream: streams opened from many goroutines at once go
// out in ID order, as the protocol requires; the peer accepts them all.
func TestConcurrentOpenStream(t *testing.T) {
	const goroutines, each = 8, 100 // 800 in all: within the accept backlog
	c, s := sessionPair(t, DefaultConfig())
	var accepted atomic.Int32
	tstServe(t, s, func(st *Stream) {
		accepted.Add(1)
		st.Close()
	})
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				st, err := c.OpenStream(context.Background())
				if err != nil {
					errs <- err
					return
				}
				st.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("OpenStream: %v", err)
	}
	tstEventually(t, "the server to accept every stream", func() bool {
		return accepted.Load() == goroutines*each || s.Err() != nil
	})
	if err := s.Err(); err != nil {
		t.Fatalf("streams opened concurrently ended the peer's session: %v", err)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("streams opened concurrently ended the session: %v", err)
	}
}

// TestOpenCostsNoRoundTrip: a stream's OPEN and its first DATA leave at
// once, without waiting for anything from the peer, so opening a stream
// and sending a request costs no round trip more than the request itself.
// The raw peer here never answers: the data must arrive anyway.
func TestOpenCostsNoRoundTrip(t *testing.T) {
	sess, raw := tstRawPair(t, true, DefaultConfig())
	raw.send(t, frame.AppendPreface(nil))
	st, err := sess.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	raw.waitFrame(t, "the OPEN", func(h frame.Header) bool { return h.Type == frame.TypeOpen && h.StreamID == st.ID() })
	h := raw.waitFrame(t, "the first DATA, with nothing sent back", func(h frame.Header) bool { return h.Type == frame.TypeData && h.StreamID == st.ID() })
	if h.Length != 18 {
		t.Fatalf("first DATA carries %d bytes, want the 18 written", h.Length)
	}
}

// OpenStreamWith sends the OPEN and the first bytes, which the peer reads
// with no answer sent back; on a closed session it fails and opens nothing.
func TestOpenStreamWith(t *testing.T) {
	sess, raw := tstRawPair(t, true, DefaultConfig())
	raw.send(t, frame.AppendPreface(nil))
	st, err := sess.OpenStreamWith(context.Background(), []byte("GET / HTTP/1.1\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	raw.waitFrame(t, "the OPEN", func(h frame.Header) bool { return h.Type == frame.TypeOpen && h.StreamID == st.ID() })
	h := raw.waitFrame(t, "the first DATA", func(h frame.Header) bool { return h.Type == frame.TypeData && h.StreamID == st.ID() })
	if h.Length != 18 {
		t.Fatalf("first DATA carries %d bytes, want the 18 given", h.Length)
	}
	sess.Close()
	if st, err := sess.OpenStreamWith(context.Background(), []byte("x")); err == nil || st != nil {
		t.Fatalf("OpenStreamWith on a closed session: %v, %v; want an error and no stream", st, err)
	}
}
