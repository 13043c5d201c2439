package mux

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// tstHdr lays out a frame header byte by byte, including what the encoder
// would never produce (flags, reserved bytes, unknown types).
func tstHdr(length uint32, typ, flags byte, reserved uint16, id uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, length)
	b = append(b, typ, flags)
	b = binary.BigEndian.AppendUint16(b, reserved)
	return binary.BigEndian.AppendUint32(b, id)
}

// tstCat joins byte slices.
func tstCat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// tstDataFrame is a DATA frame with n payload bytes.
func tstDataFrame(id uint32, n int) []byte {
	return append(frame.AppendData(nil, id, n), make([]byte, n)...)
}

// tstFill is n bytes of DATA on stream id, in frames of the largest size.
func tstFill(id uint32, n int) []byte {
	var b []byte
	for n > 0 {
		k := min(n, frame.MaxDataPayload)
		b = append(b, tstDataFrame(id, k)...)
		n -= k
	}
	return b
}

// tstManyStreamsFilled opens streams 1, 3, ... and fills each stream's
// initial window, until total bytes have been sent.
func tstManyStreamsFilled(total int) []byte {
	var b []byte
	for id := uint32(1); total > 0; id += 2 {
		k := min(total, frame.InitialStreamWindow)
		b = append(b, frame.AppendOpen(nil, id)...)
		b = append(b, tstFill(id, k)...)
		total -= k
	}
	return b
}

var tstPreface = frame.AppendPreface(nil)

// TestHostilePeer drives a session with hand-written bytes that break the
// protocol. Each must end that session with the matching typed error; the
// offender is told why in a GOAWAY (best effort), nothing panics, and a
// healthy session in the same process carries on.
func TestHostilePeer(t *testing.T) {
	healthyC, healthyS := sessionPair(t, DefaultConfig())
	tstServe(t, healthyS, tstEcho)

	open1 := frame.AppendOpen(nil, 1)
	tests := []struct {
		name            string
		sessionIsClient bool   // the raw peer plays the server (even IDs)
		preface         []byte // nil: the valid preface
		send            []byte
		halfClose       bool // the raw peer half-closes after sending
		sessionWindow   uint32
		code            frame.Code
	}{
		// The preface.
		{name: "garbage preface", preface: []byte("HELLO, W"), code: frame.CodeVersion},
		{name: "HTTP request instead of a preface", preface: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), code: frame.CodeVersion},
		{name: "wrong version", preface: []byte("SLUICE\x00\x02"), code: frame.CodeVersion},
		{name: "version zero", preface: []byte("SLUICE\x00\x00"), code: frame.CodeVersion},
		{name: "preface cut short", preface: []byte("SLU"), halfClose: true, code: frame.CodeVersion},
		{name: "nothing at all", preface: []byte{}, halfClose: true, code: frame.CodeVersion},

		// The header.
		{name: "oversize DATA length", send: tstCat(open1, tstHdr(frame.MaxDataPayload+1, 0, 0, 0, 1)), code: frame.CodeFrameSize},
		{name: "length 0xffffffff", send: tstHdr(0xffffffff, 0, 0, 0, 1), code: frame.CodeFrameSize},
		{name: "PING with a 4-byte payload", send: tstCat(tstHdr(4, byte(frame.TypePing), 0, 0, 0), make([]byte, 4)), code: frame.CodeFrameSize},
		{name: "OPEN with a payload", send: tstCat(tstHdr(1, byte(frame.TypeOpen), 0, 0, 1), []byte{0}), code: frame.CodeFrameSize},
		{name: "GOAWAY with 8 bytes", send: tstCat(tstHdr(8, byte(frame.TypeGoAway), 0, 0, 0), make([]byte, 8)), code: frame.CodeFrameSize},
		{name: "unknown type 0x09", send: tstHdr(0, 0x09, 0, 0, 1), code: frame.CodeProtocol},
		// A version 1 peer (no version offer) knows no SETTINGS.
		{name: "SETTINGS without version 2", send: frame.AppendSettings(nil, false, frame.SettingInitialStreamWindow, 1<<20), code: frame.CodeProtocol},
		{name: "SETTINGS offer after the first frame", send: tstCat(frame.AppendPing(nil, false, 1), frame.AppendVersionOffer(nil), frame.AppendSettings(nil, false, frame.SettingInitialStreamWindow, 1<<20)), code: frame.CodeProtocol},
		{name: "SETTINGS initial window below the protocol's", send: tstCat(frame.AppendVersionOffer(nil), frame.AppendSettings(nil, false, frame.SettingInitialStreamWindow, frame.InitialStreamWindow-1)), code: frame.CodeFlowControl},
		{name: "SETTINGS initial window beyond 2^31-1", send: tstCat(frame.AppendVersionOffer(nil), frame.AppendSettings(nil, false, frame.SettingInitialStreamWindow, 1<<31)), code: frame.CodeFlowControl},
		{name: "SETTINGS acknowledgement of nothing", send: tstCat(frame.AppendVersionOffer(nil), frame.AppendSettings(nil, true, frame.SettingInitialStreamWindow, 1<<20)), code: frame.CodeProtocol},
		{name: "unknown type 0xff", send: tstHdr(0, 0xff, 0, 0, 1), code: frame.CodeProtocol},
		{name: "undefined flag on OPEN", send: tstHdr(0, byte(frame.TypeOpen), 0x01, 0, 1), code: frame.CodeProtocol},
		{name: "undefined flag on DATA", send: tstCat(open1, tstHdr(0, byte(frame.TypeData), 0x80, 0, 1)), code: frame.CodeProtocol},
		{name: "reserved bytes set", send: tstHdr(0, byte(frame.TypeOpen), 0, 0x0100, 1), code: frame.CodeProtocol},
		{name: "stream ID high bit set", send: tstHdr(0, byte(frame.TypeOpen), 0, 0, 0x80000001), code: frame.CodeProtocol},
		{name: "DATA on stream 0", send: tstDataFrame(0, 4), code: frame.CodeProtocol},
		{name: "PING on a stream", send: tstCat(tstHdr(8, byte(frame.TypePing), 0, 0, 1), make([]byte, 8)), code: frame.CodeProtocol},
		{name: "header cut short", send: tstHdr(0, byte(frame.TypeOpen), 0, 0, 1)[:7], halfClose: true, code: frame.CodeProtocol},
		{name: "DATA payload cut short", send: tstCat(open1, frame.AppendData(nil, 1, 100), make([]byte, 40)), halfClose: true, code: frame.CodeProtocol},
		{name: "PING payload cut short", send: tstCat(tstHdr(8, byte(frame.TypePing), 0, 0, 0), make([]byte, 3)), halfClose: true, code: frame.CodeProtocol},

		// Flow control.
		{name: "stream credit overrun by one byte", send: tstCat(open1, tstFill(1, frame.InitialStreamWindow), tstDataFrame(1, 1)), code: frame.CodeFlowControl},
		{name: "stream credit overrun in one frame", send: tstCat(open1, tstFill(1, frame.InitialStreamWindow-10), tstDataFrame(1, 11)), code: frame.CodeFlowControl},
		{name: "session credit overrun", sessionWindow: frame.InitialSessionWindow, send: tstManyStreamsFilled(frame.InitialSessionWindow + 1), code: frame.CodeFlowControl},
		{name: "zero WINDOW_UPDATE on the session", send: frame.AppendWindowUpdate(nil, 0, 0), code: frame.CodeProtocol},
		{name: "zero WINDOW_UPDATE on a stream", send: tstCat(open1, frame.AppendWindowUpdate(nil, 1, 0)), code: frame.CodeProtocol},
		{name: "session window overflow", send: frame.AppendWindowUpdate(nil, 0, frame.MaxWindow), code: frame.CodeFlowControl},
		{name: "session window overflow in steps", send: tstCat(frame.AppendWindowUpdate(nil, 0, 1<<30), frame.AppendWindowUpdate(nil, 0, 1<<30)), code: frame.CodeFlowControl},
		{name: "stream window overflow", send: tstCat(open1, frame.AppendWindowUpdate(nil, 1, frame.MaxWindow)), code: frame.CodeFlowControl},
		{name: "WINDOW_UPDATE of 0xffffffff", send: tstCat(open1, frame.AppendWindowUpdate(nil, 1, 0xffffffff)), code: frame.CodeFlowControl},

		// Stream IDs and states.
		{name: "reused stream ID", send: tstCat(open1, open1), code: frame.CodeProtocol},
		{name: "stream opened out of order", send: tstCat(frame.AppendOpen(nil, 3), open1), code: frame.CodeProtocol},
		{name: "OPEN with the server's parity", send: frame.AppendOpen(nil, 2), code: frame.CodeProtocol},
		{name: "OPEN with the client's parity", sessionIsClient: true, send: frame.AppendOpen(nil, 1), code: frame.CodeProtocol},
		{name: "DATA on a never-opened stream", send: tstDataFrame(5, 10), code: frame.CodeProtocol},
		{name: "DATA on a never-opened stream of the session's parity", send: tstDataFrame(2, 10), code: frame.CodeProtocol},
		{name: "DATA above the last opened stream", send: tstCat(open1, tstDataFrame(3, 10)), code: frame.CodeProtocol},
		{name: "CLOSE on a never-opened stream", send: frame.AppendClose(nil, 7), code: frame.CodeProtocol},
		{name: "RESET on a never-opened stream", send: frame.AppendReset(nil, 7, frame.CodeCancel), code: frame.CodeProtocol},
		{name: "WINDOW_UPDATE on a never-opened stream", send: frame.AppendWindowUpdate(nil, 7, 100), code: frame.CodeProtocol},
		{name: "DATA after the peer's CLOSE", send: tstCat(open1, tstDataFrame(1, 10), frame.AppendClose(nil, 1), tstDataFrame(1, 10)), code: frame.CodeStreamClosed},
		{name: "empty DATA after the peer's CLOSE", send: tstCat(open1, frame.AppendClose(nil, 1), tstDataFrame(1, 0)), code: frame.CodeStreamClosed},
		{name: "second CLOSE", send: tstCat(open1, frame.AppendClose(nil, 1), frame.AppendClose(nil, 1)), code: frame.CodeStreamClosed},
	}
	goAways := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			// The session grants exactly the credit the protocol lets a
			// peer assume, which is what the overruns are measured from.
			cfg.InitialStreamWindow = frame.InitialStreamWindow
			if tc.sessionWindow != 0 {
				cfg.SessionWindow = tc.sessionWindow
			}
			sess, raw := tstRawPair(t, tc.sessionIsClient, cfg)
			preface := tc.preface
			if preface == nil {
				preface = tstPreface
			}
			// The session may end and close the connection before
			// everything is written; that is its right, so a failed
			// write is not the test's failure.
			_ = raw.conn.SetWriteDeadline(time.Now().Add(tstTimeout))
			if _, err := raw.conn.Write(tstCat(preface, tc.send)); err != nil {
				t.Logf("raw peer: write ended early: %v", err)
			}
			if tc.halfClose {
				_ = raw.conn.(*net.TCPConn).CloseWrite()
			}
			err := tstWaitDone(t, sess, "a "+tc.name)
			var fe *frame.Error
			if !errors.As(err, &fe) {
				t.Fatalf("Session.Err() = %v; want a *frame.Error with code %s", err, tc.code)
			}
			if fe.Code != tc.code {
				t.Fatalf("Session.Err() = %v (code %s); want code %s", err, fe.Code, tc.code)
			}
			if _, err := sess.OpenStream(context.Background()); !errors.Is(err, ErrSessionClosed) {
				t.Errorf("OpenStream on the ended session: %v; want ErrSessionClosed", err)
			}
			select {
			case <-raw.done:
			case <-time.After(tstTimeout):
				t.Fatal("the session ended but did not close its connection")
			}
			if raw.sawGoAway.Load() {
				goAways++
				if code := frame.Code(raw.goAway.Load()); code != tc.code {
					t.Errorf("the offender got GOAWAY(%s); want GOAWAY(%s)", code, tc.code)
				}
			} else {
				t.Logf("no GOAWAY reached the offender (best effort; raw reader ended with %v)", raw.readErr)
			}
			tstRoundTrip(t, healthyC, "still here after "+tc.name)
		})
	}
	t.Logf("GOAWAY with the right code reached %d of %d offenders", goAways, len(tests))
	if healthyC.Err() != nil || healthyS.Err() != nil {
		t.Fatalf("the healthy session ended: client %v, server %v", healthyC.Err(), healthyS.Err())
	}
}

// TestRawPeerConforming checks the raw harness itself against a session:
// well-formed hand-written frames are accepted, so the failures above come
// from the broken frames alone.
func TestRawPeerConforming(t *testing.T) {
	cfg := DefaultConfig()
	cfg.InitialStreamWindow = frame.InitialStreamWindow // the credit the raw peer assumes
	sess, raw := tstRawPair(t, false, cfg)
	raw.send(t, tstCat(
		tstPreface,
		frame.AppendOpen(nil, 1),
		frame.AppendData(nil, 1, 5), []byte("hello"),
		tstFill(1, frame.InitialStreamWindow-5), // exactly the initial credit
		frame.AppendOpen(nil, 5),                // IDs may skip
		frame.AppendReset(nil, 5, frame.CodeCancel),
		tstDataFrame(3, 10), // below the last opened: a stream whose end crossed on the wire
		frame.AppendWindowUpdate(nil, 0, 1000),
		frame.AppendPing(nil, false, 77),
	))
	pong := raw.waitFrame(t, "the PONG", func(h frame.Header) bool {
		_, offer := frame.VersionOffer(h)
		return h.Type == frame.TypePong && !offer
	})
	if pong.Value != 77 {
		t.Errorf("PONG carries %d, want the PING's 77", pong.Value)
	}
	ctx, cancel := context.WithTimeout(context.Background(), tstTimeout)
	defer cancel()
	st, err := sess.AcceptStream(ctx)
	if err != nil {
		t.Fatalf("AcceptStream: %v", err)
	}
	_ = st.SetDeadline(time.Now().Add(tstTimeout))
	got := make([]byte, frame.InitialStreamWindow)
	if _, err := io.ReadFull(st, got); err != nil || string(got[:5]) != "hello" {
		t.Fatalf("reading the window: %q..., %v; want hello...", got[:5], err)
	}
	// Reading the window gives the credit back.
	raw.waitFrame(t, "a WINDOW_UPDATE for stream 1", func(h frame.Header) bool {
		return h.Type == frame.TypeWindowUpdate && h.StreamID == 1
	})
	raw.send(t, tstCat(tstDataFrame(1, 3), frame.AppendClose(nil, 1)))
	if rest, err := io.ReadAll(st); err != nil || len(rest) != 3 {
		t.Fatalf("after the credit: read %d bytes, %v; want 3 and EOF", len(rest), err)
	}
	st2, err := sess.AcceptStream(ctx)
	if err != nil {
		t.Fatalf("AcceptStream for the reset stream: %v", err)
	}
	if _, err := st2.Read(make([]byte, 1)); !errors.Is(err, ErrStreamReset) {
		t.Errorf("Read on a stream the peer reset: %v; want ErrStreamReset", err)
	}
	if sess.Err() != nil {
		t.Fatalf("well-formed frames ended the session: %v", sess.Err())
	}
	// The session's own stream goes out with the server's parity.
	out, err := sess.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	h := raw.waitFrame(t, "the session's OPEN", func(h frame.Header) bool { return h.Type == frame.TypeOpen })
	if h.StreamID%2 != 0 || h.StreamID == 0 {
		t.Errorf("a server session opened stream %d; server streams are even", h.StreamID)
	}
}

// TestPeerGoAwayCodeReported: a GOAWAY with an error code followed by the
// peer hanging up ends the session with a RemoteError naming the code,
// whether the connection then ends cleanly or is reset because the peer
// left data unread.
func TestPeerGoAwayCodeReported(t *testing.T) {
	for _, tc := range []struct {
		name string
		read bool
	}{{"clean close", true}, {"reset with data unread", false}} {
		t.Run(tc.name, func(t *testing.T) {
			sess, raw := tstRawPairReading(t, true, DefaultConfig(), tc.read)
			raw.send(t, tstCat(tstPreface, frame.AppendGoAway(nil, frame.CodeInternal)))
			tstEventually(t, "the GOAWAY to be read", func() bool {
				_, err := sess.OpenStream(context.Background())
				return errors.Is(err, ErrGoAway)
			})
			if !tc.read {
				// Unread data makes the close a reset (RST), not a FIN.
				tstEventually(t, "the session's first batch to arrive", func() bool {
					return sess.Stats().Batches > 0
				})
				time.Sleep(10 * time.Millisecond)
			}
			_ = raw.conn.Close()
			err := tstWaitDone(t, sess, "the peer hung up after GOAWAY(INTERNAL_ERROR)")
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != frame.CodeInternal {
				t.Fatalf("Session.Err() = %v; want a *RemoteError with code INTERNAL_ERROR", err)
			}
		})
	}
}

// TestPrefaceAlwaysFirst: a session that dies at once, here on a garbage
// preface, still opens its side of the connection with its own preface, so
// the peer reads the GOAWAY that says why instead of failing on what looks
// like a garbled preface.
func TestPrefaceAlwaysFirst(t *testing.T) {
	for i := range 20 {
		sess, raw := tstRawPair(t, false, DefaultConfig())
		raw.send(t, []byte("HELLO, W"))
		tstWaitDone(t, sess, "a garbage preface")
		<-raw.done
		// Nothing at all is allowed (the GOAWAY is best effort and the
		// writer may be cut off); anything else must start with the preface.
		if n := len(raw.first); !bytes.Equal(raw.first, tstPreface[:n]) {
			t.Fatalf("attempt %d: the session's first bytes were %q, not its preface %q (reader: %v)", i+1, raw.first, tstPreface, raw.readErr)
		}
	}
}

// tstQueuedCtrl is the size of a session's queue of control frames.
func tstQueuedCtrl(s *Session) int {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return len(s.ctrl)
}

// TestControlFloodBounded: a peer that sends frames the session must
// answer (PING, refused OPEN) and never reads the answers cannot make the
// session queue answers without bound: the queue stays small, or the
// session ends.
func TestControlFloodBounded(t *testing.T) {
	const limit = 1 << 20 // far more than any honest peer causes
	flood := 24 << 20     // bytes of frames sent: more than the kernel's buffers absorb
	tests := []struct {
		name  string
		cfg   func(*Config)
		frame func(i int) []byte
	}{
		{"PING flood", nil, func(i int) []byte { return frame.AppendPing(nil, false, uint64(i)) }},
		{"refused OPEN flood", func(c *Config) { c.MaxConcurrentStreams, c.AcceptBacklog = 1, 1 },
			func(i int) []byte { return frame.AppendOpen(nil, uint32(2*i+1)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			sess, raw := tstRawPairReading(t, false, cfg, false)
			// A small send buffer on the session: its writer blocks soon.
			// The raw side's receive buffer stays as the kernel sizes it: a
			// tiny one filled with tiny segments makes the kernel prune and
			// drop them (TCPRcvQDrop), and the retransmission backoff that
			// follows stalled this test for seconds in CI rehearsals.
			_ = sess.conn.(*net.TCPConn).SetWriteBuffer(16 << 10)
			raw.send(t, tstPreface)
			var chunk []byte
			maxQueued, i := 0, 0
			for sent := 0; sent < flood && sess.Err() == nil; {
				chunk = chunk[:0]
				for len(chunk) < 64<<10 {
					chunk = append(chunk, tc.frame(i)...)
					i++
				}
				_ = raw.conn.SetWriteDeadline(time.Now().Add(tstTimeout))
				if _, err := raw.conn.Write(chunk); err != nil {
					break // the session hung up: allowed
				}
				sent += len(chunk)
				maxQueued = max(maxQueued, tstQueuedCtrl(sess))
			}
			tstEventually(t, "the session to read the flood", func() bool {
				return sess.Err() != nil || sess.Stats().FramesReceived >= uint64(i)
			})
			maxQueued = max(maxQueued, tstQueuedCtrl(sess))
			t.Logf("%d frames sent; largest control queue %d bytes; session error: %v", i, maxQueued, sess.Err())
			if err := sess.Err(); err == nil {
				if maxQueued > limit {
					t.Fatalf("the session queued %d bytes of answers to a peer that does not read them (limit %d) and is still up", maxQueued, limit)
				}
			} else if fe := (*frame.Error)(nil); !errors.As(err, &fe) {
				t.Fatalf("the flood ended the session with %v; want a *frame.Error naming the flood", err)
			}
		})
	}
}
