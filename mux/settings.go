package mux

import (
	"time"

	"github.com/sluicehq/sluice/frame"
)

// Protocol versions and SETTINGS. Every preface says version 1, which is
// all a version 1 peer accepts; a side that speaks more offers it in its
// first frame (frame.AppendVersionOffer), a PONG that version 1 peers
// ignore, and the session speaks the lower of the two offers from the
// moment it has read the peer's first frame. Version 2 adds SETTINGS: a
// side announces the credit it grants each stream the peer opens, so that
// the opener may send a large window's worth at once instead of waiting a
// round trip for the WINDOW_UPDATE that would otherwise grant it. The
// peer acknowledges each SETTINGS in its frame order: the OPENs it sends
// before the acknowledgement still assume the old credit, those after it
// the new one, so both sides agree on every stream's window without
// adjusting streams already open. docs/PROTOCOL.md has the wire rules.

// ProtocolVersion is the protocol version the session speaks: 1 or 2 once
// the peer's first frame has been read, 0 before.
func (s *Session) ProtocolVersion() int { return int(s.version.Load()) }

// negotiate settles the version from the peer's first frame, h, and
// reports whether h was the version offer (consumed) rather than a frame
// to handle. recvLoop only.
func (s *Session) negotiate(h frame.Header) (offer bool) {
	v, ok := frame.VersionOffer(h)
	if !ok {
		s.version.Store(1)
		return false
	}
	s.version.Store(uint32(min(v, frame.MaxVersion)))
	s.announceStreamWindow()
	return true
}

// wanRTT is the shortest round trip for which new streams start with a
// window sized to the path (wanWindow). Below it the one round trip a
// stream waits for a larger window costs little, and on a busy host the
// samples are as much scheduling as path: a loopback session measures
// milliseconds under load, and large initial windows there only lengthen
// the queues that small messages wait in.
const wanRTT = 10 * time.Millisecond

// wanWindow is the receive window a new stream starts with on a path of
// round trip rtt: twice the bandwidth-delay product of 1 Gbit/s
// (0.125 bytes per nanosecond), so that a stream runs at the link's rate
// from its first byte on any WAN path up to that fast (auto-tuning takes
// it further), or 0 on a shorter round trip (see wanRTT). A window is a
// bound, not memory: a stream holds only what arrives and is not read, and
// the session window bounds that for all streams together.
func wanWindow(rtt time.Duration, lim *windowLimits) int64 {
	if rtt < wanRTT {
		return 0
	}
	return min(lim.max, rtt.Nanoseconds()/4)
}

// streamWindow is the receive window this side gives a new stream: the
// configured one, or the path's (wanWindow) if that is larger.
func (s *Session) streamWindow() int64 { return max(s.lim.initial, s.wanWin.Load()) }

// rttChanged is called with the first round-trip sample and whenever the
// smallest one changes: new streams get the window the path now needs, and
// the peer learns it. recvLoop only.
func (s *Session) rttChanged(rtt time.Duration) {
	s.wanWin.Store(wanWindow(rtt, &s.lim))
	s.announceStreamWindow()
}

// announceStreamWindow tells a version 2 peer the credit it may assume in
// the streams it opens, when that differs from what was announced last.
// recvLoop only.
func (s *Session) announceStreamWindow() {
	w := s.streamWindow()
	if s.version.Load() < 2 || w == s.announced {
		return
	}
	s.announced = w
	s.settingsPending++
	s.queueCtrl(func(b []byte) []byte {
		return frame.AppendSettings(b, false, frame.SettingInitialStreamWindow, uint32(w))
	})
}

// handleSettings applies the peer's SETTINGS and acknowledges it, or takes
// the peer's acknowledgement of this side's. recvLoop only.
func (s *Session) handleSettings(h frame.Header) error {
	if s.version.Load() < 2 {
		return frame.SessionError(frame.CodeProtocol, "SETTINGS frame from a peer that did not offer protocol version 2")
	}
	id, v := h.Setting()
	if h.Flags&frame.FlagAck != 0 {
		if s.settingsPending == 0 {
			return frame.SessionError(frame.CodeProtocol, "SETTINGS acknowledgement (setting %d = %d) for no SETTINGS this side sent", id, v)
		}
		s.settingsPending--
		if id == frame.SettingInitialStreamWindow {
			// Every OPEN that follows on the wire was sent assuming it.
			s.acceptWindow = int64(v)
		}
		return nil
	}
	if id == frame.SettingInitialStreamWindow && (v < frame.InitialStreamWindow || v > frame.MaxWindow) {
		return frame.SessionError(frame.CodeFlowControl, "SETTINGS announces an initial stream window of %d; it must be between %d and %d", v, frame.InitialStreamWindow, frame.MaxWindow)
	}
	if err := s.ctrlFlooded(); err != nil {
		return err
	}
	// The new credit and the acknowledgement are one step under sendMu, the
	// lock OPENs are queued under: every OPEN before the acknowledgement
	// on the wire assumed the old credit, every one after it the new.
	s.sendMu.Lock()
	if id == frame.SettingInitialStreamWindow {
		s.openWindow = int64(v)
	}
	s.ctrl = frame.AppendSettings(s.ctrl, true, id, v)
	s.sendMu.Unlock()
	s.signalWriter()
	return nil
}
