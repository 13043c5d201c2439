package frame_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/frame"
)

func TestWireConstants(t *testing.T) {
	// These numbers are the wire format; changing one breaks every peer.
	if frame.HeaderSize != 12 || frame.PrefaceSize != 8 || frame.Magic != "SLUICE" || frame.Version != 1 {
		t.Fatalf("wire constants changed: HeaderSize=%d PrefaceSize=%d Magic=%q Version=%d",
			frame.HeaderSize, frame.PrefaceSize, frame.Magic, frame.Version)
	}
	if frame.MaxDataPayload != 65536 || frame.MaxWindow != 1<<31-1 {
		t.Fatalf("wire limits changed: MaxDataPayload=%d MaxWindow=%d", frame.MaxDataPayload, frame.MaxWindow)
	}
	wantTypes := map[frame.Type]byte{
		frame.TypeData: 0, frame.TypeOpen: 1, frame.TypeClose: 2, frame.TypeReset: 3,
		frame.TypeWindowUpdate: 4, frame.TypePing: 5, frame.TypePong: 6, frame.TypeGoAway: 7,
		frame.TypeSettings: 8,
	}
	for typ, b := range wantTypes {
		if byte(typ) != b {
			t.Errorf("type %s has number %d; the wire says %d", typ, byte(typ), b)
		}
	}
}

// TestParseHeaderCases lists notable headers one by one, as a reader of the
// protocol document would check them.
func TestParseHeaderCases(t *testing.T) {
	const (
		D  = byte(frame.TypeData)
		O  = byte(frame.TypeOpen)
		C  = byte(frame.TypeClose)
		R  = byte(frame.TypeReset)
		W  = byte(frame.TypeWindowUpdate)
		Pi = byte(frame.TypePing)
		Po = byte(frame.TypePong)
		G  = byte(frame.TypeGoAway)
		S  = byte(frame.TypeSettings)
	)
	maxID := uint32(1<<31 - 1)
	ok := frame.Code(0xFFFF) // sentinel: no error expected
	cases := []struct {
		name string
		hdr  []byte
		code frame.Code
		want frame.Header // checked when code == ok
	}{
		{"DATA empty", rawHeader(0, D, 0, 0, 0, 1), ok, frame.Header{Type: frame.TypeData, StreamID: 1}},
		{"DATA max payload", rawHeader(65536, D, 0, 0, 0, 7), ok, frame.Header{Length: 65536, Type: frame.TypeData, StreamID: 7}},
		{"DATA max stream ID", rawHeader(5, D, 0, 0, 0, maxID), ok, frame.Header{Length: 5, Type: frame.TypeData, StreamID: maxID}},
		{"DATA one over max payload", rawHeader(65537, D, 0, 0, 0, 1), frame.CodeFrameSize, frame.Header{}},
		{"DATA length 0xFFFFFFFF", rawHeader(0xFFFFFFFF, D, 0, 0, 0, 1), frame.CodeFrameSize, frame.Header{}},
		{"DATA on stream 0", rawHeader(10, D, 0, 0, 0, 0), frame.CodeProtocol, frame.Header{}},
		{"OPEN", rawHeader(0, O, 0, 0, 0, 3), ok, frame.Header{Type: frame.TypeOpen, StreamID: 3}},
		{"OPEN with payload", rawHeader(1, O, 0, 0, 0, 3), frame.CodeFrameSize, frame.Header{}},
		{"OPEN on stream 0", rawHeader(0, O, 0, 0, 0, 0), frame.CodeProtocol, frame.Header{}},
		{"CLOSE", rawHeader(0, C, 0, 0, 0, 4), ok, frame.Header{Type: frame.TypeClose, StreamID: 4}},
		{"CLOSE with payload", rawHeader(4, C, 0, 0, 0, 4), frame.CodeFrameSize, frame.Header{}},
		{"CLOSE on stream 0", rawHeader(0, C, 0, 0, 0, 0), frame.CodeProtocol, frame.Header{}},
		{"RESET", rawHeader(4, R, 0, 0, 0, 9), ok, frame.Header{Length: 4, Type: frame.TypeReset, StreamID: 9}},
		{"RESET short", rawHeader(3, R, 0, 0, 0, 9), frame.CodeFrameSize, frame.Header{}},
		{"RESET long", rawHeader(5, R, 0, 0, 0, 9), frame.CodeFrameSize, frame.Header{}},
		{"RESET on stream 0", rawHeader(4, R, 0, 0, 0, 0), frame.CodeProtocol, frame.Header{}},
		{"WINDOW_UPDATE stream", rawHeader(4, W, 0, 0, 0, 2), ok, frame.Header{Length: 4, Type: frame.TypeWindowUpdate, StreamID: 2}},
		{"WINDOW_UPDATE session", rawHeader(4, W, 0, 0, 0, 0), ok, frame.Header{Length: 4, Type: frame.TypeWindowUpdate}},
		{"WINDOW_UPDATE empty", rawHeader(0, W, 0, 0, 0, 2), frame.CodeFrameSize, frame.Header{}},
		{"WINDOW_UPDATE 8 bytes", rawHeader(8, W, 0, 0, 0, 0), frame.CodeFrameSize, frame.Header{}},
		{"PING", rawHeader(8, Pi, 0, 0, 0, 0), ok, frame.Header{Length: 8, Type: frame.TypePing}},
		{"PING 4 bytes", rawHeader(4, Pi, 0, 0, 0, 0), frame.CodeFrameSize, frame.Header{}},
		{"PING on a stream", rawHeader(8, Pi, 0, 0, 0, 1), frame.CodeProtocol, frame.Header{}},
		{"PONG", rawHeader(8, Po, 0, 0, 0, 0), ok, frame.Header{Length: 8, Type: frame.TypePong}},
		{"PONG 9 bytes", rawHeader(9, Po, 0, 0, 0, 0), frame.CodeFrameSize, frame.Header{}},
		{"PONG on a stream", rawHeader(8, Po, 0, 0, 0, maxID), frame.CodeProtocol, frame.Header{}},
		{"GOAWAY", rawHeader(4, G, 0, 0, 0, 0), ok, frame.Header{Length: 4, Type: frame.TypeGoAway}},
		{"GOAWAY empty", rawHeader(0, G, 0, 0, 0, 0), frame.CodeFrameSize, frame.Header{}},
		{"GOAWAY on a stream", rawHeader(4, G, 0, 0, 0, 5), frame.CodeProtocol, frame.Header{}},
		{"SETTINGS", rawHeader(8, S, 0, 0, 0, 0), ok, frame.Header{Length: 8, Type: frame.TypeSettings}},
		{"SETTINGS ack", rawHeader(8, S, 0x01, 0, 0, 0), ok, frame.Header{Length: 8, Type: frame.TypeSettings, Flags: frame.FlagAck}},
		{"SETTINGS flag 0x02", rawHeader(8, S, 0x02, 0, 0, 0), frame.CodeProtocol, frame.Header{}},
		{"SETTINGS 6 bytes", rawHeader(6, S, 0, 0, 0, 0), frame.CodeFrameSize, frame.Header{}},
		{"SETTINGS on a stream", rawHeader(8, S, 0, 0, 0, 1), frame.CodeProtocol, frame.Header{}},
		{"ack flag on PONG", rawHeader(8, Po, 0x01, 0, 0, 0), frame.CodeProtocol, frame.Header{}},
		{"unknown type 9", rawHeader(0, 9, 0, 0, 0, 1), frame.CodeProtocol, frame.Header{}},
		{"unknown type 0xFF", rawHeader(0, 0xFF, 0, 0, 0, 0), frame.CodeProtocol, frame.Header{}},
		{"flag 0x01", rawHeader(0, O, 0x01, 0, 0, 1), frame.CodeProtocol, frame.Header{}},
		{"flag 0x80", rawHeader(4, G, 0x80, 0, 0, 0), frame.CodeProtocol, frame.Header{}},
		{"reserved byte 6", rawHeader(0, O, 0, 1, 0, 1), frame.CodeProtocol, frame.Header{}},
		{"reserved byte 7", rawHeader(8, Pi, 0, 0, 0x80, 0), frame.CodeProtocol, frame.Header{}},
		{"stream ID high bit", rawHeader(0, O, 0, 0, 0, 1<<31), frame.CodeProtocol, frame.Header{}},
		{"stream ID all ones", rawHeader(4, W, 0, 0, 0, 0xFFFFFFFF), frame.CodeProtocol, frame.Header{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := frame.ParseHeader(tc.hdr)
			if tc.code == ok {
				if err != nil {
					t.Fatalf("ParseHeader(% x) = %v; want %+v", tc.hdr, err, tc.want)
				}
				if h != tc.want {
					t.Fatalf("ParseHeader(% x) = %+v; want %+v", tc.hdr, h, tc.want)
				}
				return
			}
			asFrameError(t, err, tc.code)
		})
	}
}

// TestParseHeaderMatrix crosses every type with lengths at and around its
// limits and with stream IDs 0, 1 and the largest, and checks each verdict
// against the test's own statement of the rules.
func TestParseHeaderMatrix(t *testing.T) {
	streams := []uint32{0, 1, 2, 1<<31 - 1}
	for _, typ := range allTypes {
		r := wireRules[typ]
		lengths := []uint32{r.minLen, r.maxLen, r.maxLen + 1, 0xFFFFFFFF}
		if r.minLen > 0 {
			lengths = append(lengths, r.minLen-1, 0)
		}
		if r.maxLen > 0 {
			lengths = append(lengths, r.maxLen-1)
		}
		for _, n := range lengths {
			for _, id := range streams {
				name := fmt.Sprintf("%s/len=%d/stream=%d", typ, n, id)
				t.Run(name, func(t *testing.T) {
					h, err := frame.ParseHeader(rawHeader(n, byte(typ), 0, 0, 0, id))
					if !ruleAllows(typ, n, id) {
						fe := asFrameError(t, err, wantCode(typ, n))
						if !strings.Contains(fe.Reason, typ.String()) {
							t.Errorf("reason %q does not name the frame type %s", fe.Reason, typ)
						}
						return
					}
					if err != nil {
						t.Fatalf("ParseHeader rejected a valid header: %v", err)
					}
					want := frame.Header{Length: n, Type: typ, StreamID: id}
					if h != want {
						t.Fatalf("got %+v; want %+v", h, want)
					}
				})
			}
		}
	}
}

// wantCode is the code a single-fault header earns: a wrong length is a
// frame-size error, anything else a protocol error.
func wantCode(typ frame.Type, n uint32) frame.Code {
	r := wireRules[typ]
	if n < r.minLen || n > r.maxLen {
		return frame.CodeFrameSize
	}
	return frame.CodeProtocol
}

// TestParseHeaderReservedBits sets every flag bit, every reserved bit and the
// stream ID's high bit, one at a time, on a valid header of every type.
func TestParseHeaderReservedBits(t *testing.T) {
	for _, typ := range allTypes {
		r := wireRules[typ]
		id := uint32(1)
		if r.where == sessionOnly {
			id = 0
		}
		base := rawHeader(r.minLen, byte(typ), 0, 0, 0, id)
		if _, err := frame.ParseHeader(base); err != nil {
			t.Fatalf("%s: base header % x rejected: %v", typ, base, err)
		}
		for _, pos := range []int{5, 6, 7, 8} {
			for bit := 0; bit < 8; bit++ {
				if pos == 8 && bit != 7 {
					continue // only the top bit of the stream ID is reserved
				}
				if pos == 5 && typ == frame.TypeSettings && frame.Flags(1<<bit) == frame.FlagAck {
					continue // SETTINGS may carry ACK
				}
				b := bytes.Clone(base)
				b[pos] |= 1 << bit
				_, err := frame.ParseHeader(b)
				asFrameError(t, err, frame.CodeProtocol)
			}
		}
	}
}

func TestParseHeaderUnknownTypes(t *testing.T) {
	for typ := 9; typ <= 0xFF; typ++ {
		_, err := frame.ParseHeader(rawHeader(0, byte(typ), 0, 0, 0, 1))
		fe := asFrameError(t, err, frame.CodeProtocol)
		if want := fmt.Sprintf("0x%02x", typ); !strings.Contains(fe.Reason, want) {
			t.Errorf("reason %q for type %d does not name the type as %s", fe.Reason, typ, want)
		}
	}
}

func TestPutHeaderMatchesLayout(t *testing.T) {
	h := frame.Header{Length: 0x01020304, Type: frame.TypeWindowUpdate, StreamID: 0x7A0B0C0D, Value: 99}
	b := make([]byte, frame.HeaderSize)
	for i := range b {
		b[i] = 0xEE // PutHeader must overwrite every byte, reserved ones too
	}
	frame.PutHeader(b, h)
	want := rawHeader(0x01020304, byte(frame.TypeWindowUpdate), 0, 0, 0, 0x7A0B0C0D)
	if !bytes.Equal(b, want) {
		t.Fatalf("PutHeader wrote % x; want % x", b, want)
	}
}

func TestStringers(t *testing.T) {
	cases := []struct{ got, want string }{
		{frame.TypeData.String(), "DATA"},
		{frame.TypeWindowUpdate.String(), "WINDOW_UPDATE"},
		{frame.TypeGoAway.String(), "GOAWAY"},
		{frame.Type(0x2a).String(), "UNKNOWN_TYPE(0x2a)"},
		{frame.CodeNoError.String(), "NO_ERROR"},
		{frame.CodeFrameSize.String(), "FRAME_SIZE_ERROR"},
		{frame.CodeVersion.String(), "VERSION_MISMATCH"},
		{frame.Code(0x1234).String(), "UNKNOWN_CODE(0x1234)"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q; want %q", c.got, c.want)
		}
	}
	for c := frame.CodeNoError; c <= frame.CodeVersion; c++ {
		if strings.HasPrefix(c.String(), "UNKNOWN") {
			t.Errorf("code %d has no name", uint32(c))
		}
	}
	h := frame.Header{Length: 4, Type: frame.TypeReset, StreamID: 3, Value: 7}
	if got := h.String(); got != "RESET stream=3 len=4 flags=0x00 value=7" {
		t.Errorf("Header.String() = %q", got)
	}
}

func TestErrorMessages(t *testing.T) {
	ss := frame.SessionError(frame.CodeKeepalive, "no pong in %ds", 30)
	if ss.Code != frame.CodeKeepalive || ss.Reason != "no pong in 30s" {
		t.Fatalf("SessionError built %+v", ss)
	}
	if got := ss.Error(); !strings.Contains(got, "KEEPALIVE_TIMEOUT") || !strings.Contains(got, "no pong in 30s") || strings.Contains(got, "stream") {
		t.Errorf("session error message %q must name the code and reason and no stream", got)
	}
}

func TestSettingsRoundTrip(t *testing.T) {
	for _, ack := range []bool{false, true} {
		b := frame.AppendSettings(nil, ack, frame.SettingInitialStreamWindow, 32<<20)
		r := frame.NewReader(bytes.NewReader(b), 64)
		h, err := r.Next()
		if err != nil {
			t.Fatalf("ack=%v: %v", ack, err)
		}
		id, v := h.Setting()
		if h.Type != frame.TypeSettings || id != frame.SettingInitialStreamWindow || v != 32<<20 || (h.Flags == frame.FlagAck) != ack {
			t.Fatalf("ack=%v: decoded %+v (setting %d = %d)", ack, h, id, v)
		}
	}
}

func TestVersionOffer(t *testing.T) {
	b := frame.AppendVersionOffer(nil)
	// The layout: a PONG on stream 0 whose 8 bytes are "SLUICE" and the
	// highest version the sender speaks.
	want := append(rawHeader(8, byte(frame.TypePong), 0, 0, 0, 0), 'S', 'L', 'U', 'I', 'C', 'E', 0, byte(frame.MaxVersion))
	if !bytes.Equal(b, want) {
		t.Fatalf("version offer % x; want % x", b, want)
	}
	h, err := frame.NewReader(bytes.NewReader(b), 64).Next()
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := frame.VersionOffer(h); !ok || v != frame.MaxVersion {
		t.Fatalf("VersionOffer = %d, %v; want %d, true", v, ok, frame.MaxVersion)
	}
	for _, h := range []frame.Header{
		{Type: frame.TypePong, Length: 8, Value: 12345},               // an answer to a PING
		{Type: frame.TypePing, Length: 8, Value: h.Value},             // a PING, not a PONG
		{Type: frame.TypePong, Length: 8, Value: h.Value&^0xffff | 1}, // an offer of version 1
	} {
		if v, ok := frame.VersionOffer(h); ok {
			t.Errorf("VersionOffer(%+v) = %d, true; it is no offer", h, v)
		}
	}
}
