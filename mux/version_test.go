package mux

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// tstOpenWindow is the credit s's next stream starts with, as its peer
// announced it.
func tstOpenWindow(s *Session) int64 {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.openWindow
}

func TestVersionNegotiated(t *testing.T) {
	c, s := sessionPair(t, DefaultConfig())
	tstServe(t, s, tstEcho)
	tstRoundTrip(t, c, "hello")
	tstEventually(t, "both sides to settle the version", func() bool {
		return c.ProtocolVersion() == 2 && s.ProtocolVersion() == 2
	})
}

// TestSettingsInitialStreamWindow: a version 2 receiver announces its
// initial stream window, and the peer's streams opened after that may send
// all of it at once: a write far beyond the protocol's 256 KiB completes
// while nobody reads, with no WINDOW_UPDATE.
func TestSettingsInitialStreamWindow(t *testing.T) {
	const window = 4 << 20
	srvCfg := DefaultConfig()
	srvCfg.InitialStreamWindow = window
	c, s := tstPair(t, DefaultConfig(), srvCfg)
	tstEventually(t, "the server's SETTINGS to reach the client", func() bool { return tstOpenWindow(c) == window })
	_, acc := tstWriteUnread(t, c, s, window-DefaultMaxStreamQueue)
	if got := tstWindow(acc); got != window {
		t.Errorf("the accepted stream's window is %d; the server announced %d", got, window)
	}
}

// tstWriteUnread opens a stream on c, once s has read every frame c sent
// before, and writes n bytes on it that nobody reads; the write must
// complete, the window less what the stream queues on its own side being
// at the peer. It returns the stream and s's side of it.
func tstWriteUnread(t *testing.T, c, s *Session, n int) (*Stream, *Stream) {
	t.Helper()
	tstSync(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), tstTimeout)
	defer cancel()
	st, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetWriteDeadline(time.Now().Add(tstTimeout))
	if _, err := st.Write(make([]byte, n)); err != nil {
		t.Fatalf("writing %d bytes into the announced window, nobody reading: %v", n, err)
	}
	acc, err := s.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st, acc
}

// tstSync returns once the peer of s has read every frame s queued before
// the call: a PING goes out behind them, and the PONG comes back after.
func tstSync(t *testing.T, s *Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tstTimeout)
	defer cancel()
	if _, err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// TestWANStreamWindowAnnounced: over a path with a WAN round trip, each
// side gives new streams the window the path needs (wanWindow) and
// announces it, so both directions of a new stream start with it.
func TestWANStreamWindowAnnounced(t *testing.T) {
	a, b := tstDelayLink(t, 10*time.Millisecond) // 20 ms round trip
	c, s := tstSessions(t, a, b, DefaultConfig(), DefaultConfig())
	tstEventually(t, "both sides to measure the round trip", func() bool {
		return c.tuningRTT() >= wanRTT && s.tuningRTT() >= wanRTT
	})
	tstEventually(t, "the server's SETTINGS to reach the client", func() bool {
		return tstOpenWindow(c) > frame.InitialStreamWindow
	})
	// Half of it: a smaller round trip measured meanwhile lowers it a
	// little. Far more than the protocol's 256 KiB either way.
	n := int(tstOpenWindow(c)) / 2
	st, acc := tstWriteUnread(t, c, s, n)
	// Later round-trip samples may lower the window a little; the write
	// above is the check that the opener had it.
	if got := tstWindow(acc); got < int64(n) {
		t.Errorf("the accepted stream's window is %d; the opener sent %d without a grant", got, n)
	}
	if got := tstWindow(st); got <= frame.InitialStreamWindow {
		t.Errorf("the opened stream's receive window is %d; want the path's, above the protocol's %d", got, frame.InitialStreamWindow)
	}
}

// tstV1Peer speaks version 1 of the protocol as an implementation built
// before version 2 did: a preface, a session WINDOW_UPDATE and a PING,
// PONGs for the session's PINGs, the protocol's 256 KiB of credit and
// nothing else. Every frame it receives must be one version 1 knows (type
// DATA … GOAWAY, no flags): anything else would end a real version 1
// peer's session with PROTOCOL_ERROR.
type tstV1Peer struct {
	conn   net.Conn
	client bool
	mu     sync.Mutex
	wmu    sync.Mutex
	bad    []string       // frames a version 1 peer would refuse
	data   map[uint32]int // DATA bytes received per stream
	opened []uint32       // streams the session opened
	done   chan struct{}
}

func tstStartV1Peer(t *testing.T, conn net.Conn, client bool) *tstV1Peer {
	p := &tstV1Peer{conn: conn, client: client, data: map[uint32]int{}, done: make(chan struct{})}
	b := frame.AppendPreface(nil)
	b = frame.AppendWindowUpdate(b, 0, 1<<20)
	b = frame.AppendPing(b, false, 1)
	p.write(t, b)
	go p.readLoop()
	t.Cleanup(func() {
		conn.Close()
		<-p.done
	})
	return p
}

func (p *tstV1Peer) write(t *testing.T, b []byte) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(tstTimeout))
	if _, err := p.conn.Write(b); err != nil {
		t.Errorf("version 1 peer: writing: %v", err)
	}
}

func (p *tstV1Peer) readLoop() {
	defer close(p.done)
	fr := frame.NewReader(p.conn, 64<<10)
	if err := fr.ReadPreface(); err != nil {
		p.note("preface: %v", err)
		return
	}
	for {
		h, err := fr.Next()
		if err != nil {
			return
		}
		if h.Type > frame.TypeGoAway || h.Flags != 0 {
			p.note("%s", h)
		}
		switch h.Type {
		case frame.TypeData:
			if err := fr.Discard(h); err != nil {
				return
			}
			p.mu.Lock()
			p.data[h.StreamID] += int(h.Length)
			p.mu.Unlock()
		case frame.TypeOpen:
			p.mu.Lock()
			p.opened = append(p.opened, h.StreamID)
			p.mu.Unlock()
		case frame.TypePing:
			p.wmu.Lock()
			_, _ = p.conn.Write(frame.AppendPing(nil, true, h.Value))
			p.wmu.Unlock()
		}
	}
}

func (p *tstV1Peer) note(format string, args ...any) {
	p.mu.Lock()
	p.bad = append(p.bad, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

func (p *tstV1Peer) received(id uint32) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.data[id]
}

func (p *tstV1Peer) check(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.bad {
		t.Errorf("the session sent a version 1 peer what it cannot read: %s", b)
	}
}

// TestVersion1Peer: a session that speaks version 2 keeps working with a
// peer built for version 1, in both roles (a new edge with an old agent,
// a new agent with an old edge), over a path with a WAN round trip, where
// a version 2 peer would be sent SETTINGS: it speaks version 1, sends
// nothing a version 1 peer cannot read, and holds to the protocol's
// 256 KiB of credit in the streams it opens.
func TestVersion1Peer(t *testing.T) {
	for _, sessionIsClient := range []bool{false, true} {
		name := "old agent, new edge"
		if sessionIsClient {
			name = "new agent, old edge"
		}
		t.Run(name, func(t *testing.T) {
			a, b := tstDelayLink(t, 10*time.Millisecond)
			var sess *Session
			var err error
			if sessionIsClient {
				sess, err = Client(a, DefaultConfig())
			} else {
				sess, err = Server(a, DefaultConfig())
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sess.Close() })
			old := tstStartV1Peer(t, b, !sessionIsClient)
			tstEventually(t, "the session to measure a WAN round trip", func() bool { return sess.tuningRTT() >= wanRTT })
			if v := sess.ProtocolVersion(); v != 1 {
				t.Fatalf("ProtocolVersion() = %d with a version 1 peer; want 1", v)
			}

			// The old peer opens a stream and fills the credit it knows of.
			id := uint32(2)
			if old.client {
				id = 1
			}
			old.write(t, tstCat(frame.AppendOpen(nil, id), tstFill(id, frame.InitialStreamWindow)))
			ctx, cancel := context.WithTimeout(context.Background(), tstTimeout)
			defer cancel()
			acc, err := sess.AcceptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = acc.SetReadDeadline(time.Now().Add(tstTimeout))
			if _, err := io.ReadFull(acc, make([]byte, frame.InitialStreamWindow)); err != nil {
				t.Fatalf("reading what the version 1 peer sent: %v", err)
			}

			// The session opens one and writes more than 256 KiB: the old
			// peer, which grants nothing, gets exactly 256 KiB.
			st, err := sess.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			written := tstCall(func() error {
				_ = st.SetWriteDeadline(time.Now().Add(tstTimeout))
				_, err := st.Write(make([]byte, 1<<20))
				return err
			})
			tstEventually(t, "the protocol's initial credit to arrive", func() bool {
				return old.received(st.ID()) == frame.InitialStreamWindow
			})
			time.Sleep(5 * sess.tuningRTT()) // anything beyond it would arrive now
			if got := old.received(st.ID()); got != frame.InitialStreamWindow {
				t.Fatalf("a version 1 peer that granted nothing got %d bytes; its credit is %d", got, frame.InitialStreamWindow)
			}
			old.write(t, frame.AppendWindowUpdate(nil, st.ID(), 1<<20))
			if err := tstRecv(t, written, "the write after the grant"); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if sess.Err() != nil {
				t.Fatalf("the session ended: %v", sess.Err())
			}
			old.check(t)
		})
	}
}

// TestVersionOfferFromALaterVersion: a peer that offers a version beyond
// this side's gets this side's highest, and SETTINGS with it.
func TestVersionOfferFromALaterVersion(t *testing.T) {
	cfg := DefaultConfig()
	cfg.InitialStreamWindow = 1 << 20
	sess, raw := tstRawPair(t, false, cfg)
	offer := frame.AppendVersionOffer(nil)
	offer[len(offer)-1] = 9 // "SLUICE", version 9
	raw.send(t, tstCat(tstPreface, offer))
	h := raw.waitFrame(t, "the session's SETTINGS", func(h frame.Header) bool { return h.Type == frame.TypeSettings })
	if id, v := h.Setting(); h.Flags != 0 || id != frame.SettingInitialStreamWindow || v != 1<<20 {
		t.Fatalf("SETTINGS %+v (setting %d = %d); want INITIAL_STREAM_WINDOW = %d", h, id, v, 1<<20)
	}
	if v := sess.ProtocolVersion(); v != int(frame.MaxVersion) {
		t.Fatalf("ProtocolVersion() = %d with a peer offering 9; want %d", v, frame.MaxVersion)
	}
}
