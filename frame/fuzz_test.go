package frame_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/sluicehq/sluice/frame"
)

// FuzzDecode feeds arbitrary bytes to a Reader, with or without a preface in
// front. Decoding must never panic; it must stop with io.EOF exactly on a
// frame boundary or with a session *Error; every header it accepts must obey
// the protocol's rules and re-encode to the very bytes it came from.
func FuzzDecode(f *testing.F) {
	valid, _ := buildStream(3, 0, 40)
	f.Add(valid)
	f.Add(valid[frame.PrefaceSize:])
	f.Add(valid[:len(valid)-3])
	f.Add([]byte{})
	f.Add([]byte("SLUICE\x00\x02"))
	f.Add([]byte("SLUICE\x00"))
	f.Add(rawHeader(65537, 0, 0, 0, 0, 1))
	f.Add(rawHeader(8, byte(frame.TypePing), 0, 0, 0, 1))
	f.Add(rawHeader(4, byte(frame.TypeWindowUpdate), 0x01, 0, 0, 0))
	f.Add(append(rawHeader(4, byte(frame.TypeGoAway), 0, 0, 0, 0), 0, 0))

	f.Fuzz(func(t *testing.T, data []byte) {
		var src io.Reader = bytes.NewReader(data)
		if len(data)%2 == 1 {
			src = iotest.OneByteReader(src) // exercise partial reads too
		}
		r := frame.NewReader(src, 16)
		off := 0
		if bytes.HasPrefix(data, []byte(frame.Magic)) {
			if err := r.ReadPreface(); err != nil {
				asFrameError(t, err, frame.CodeVersion)
				if len(data) >= frame.PrefaceSize && frame.ParsePreface(data[:frame.PrefaceSize]) == nil {
					t.Fatalf("ReadPreface rejected a valid preface: %v", err)
				}
				return
			}
			off = frame.PrefaceSize
		}
		for {
			h, err := r.Next()
			rest := data[off:]
			if err != nil {
				checkStop(t, err, rest)
				return
			}
			if !ruleAllows(h.Type, h.Length, h.StreamID) {
				t.Fatalf("Next accepted %+v, which the protocol forbids", h)
			}
			if got := frame.AppendHeader(nil, h.Type, h.StreamID, h.Length); !bytes.Equal(got, rest[:frame.HeaderSize]) {
				t.Fatalf("header % x decoded to %+v, which re-encodes to % x", rest[:frame.HeaderSize], h, got)
			}
			body := rest[frame.HeaderSize:]
			switch {
			case h.Type == frame.TypeData && h.StreamID%2 == 0:
				if err := r.Discard(h); err != nil {
					checkStop(t, err, rest)
					return
				}
			case h.Type == frame.TypeData:
				payload := make([]byte, h.Length)
				if err := r.ReadPayload(h, payload); err != nil {
					checkStop(t, err, rest)
					return
				}
				if !bytes.Equal(payload, body[:h.Length]) {
					t.Fatalf("DATA payload read back differs from the bytes on the wire")
				}
			case wireRules[h.Type].fixed:
				if !bytes.Equal(beBytes(h.Value, int(h.Length)), body[:h.Length]) {
					t.Fatalf("%s value %d does not re-encode to its wire bytes % x", h.Type, h.Value, body[:h.Length])
				}
			default:
				if h.Value != 0 {
					t.Fatalf("%s carries no value but decoded Value=%d", h.Type, h.Value)
				}
			}
			off += frame.HeaderSize + int(h.Length)
		}
	})
}

// checkStop judges the error that ended decoding, given the bytes that were
// left from the start of the frame being read.
func checkStop(t *testing.T, err error, rest []byte) {
	t.Helper()
	if len(rest) == 0 {
		if err != io.EOF {
			t.Fatalf("input ended on a frame boundary but decoding stopped with %v; want io.EOF", err)
		}
		return
	}
	fe := asFrameError(t, err, codeOf(err))
	if len(rest) < frame.HeaderSize {
		if fe.Code != frame.CodeProtocol {
			t.Fatalf("truncated header reported as %v", err)
		}
		return
	}
	// A whole header is present: the error is either a rule the header
	// breaks or a payload cut short; the test's own rules decide which.
	typ, length := frame.Type(rest[4]), uint32(rest[0])<<24|uint32(rest[1])<<16|uint32(rest[2])<<8|uint32(rest[3])
	stream := uint32(rest[8])<<24 | uint32(rest[9])<<16 | uint32(rest[10])<<8 | uint32(rest[11])
	headerOK := rest[5] == 0 && rest[6] == 0 && rest[7] == 0 && ruleAllows(typ, length, stream)
	if headerOK && uint64(len(rest)) >= frame.HeaderSize+uint64(length) {
		t.Fatalf("a valid, complete frame % x was rejected: %v", rest[:frame.HeaderSize], err)
	}
	if headerOK && fe.Code != frame.CodeProtocol {
		t.Fatalf("a truncated payload was reported as %v; want PROTOCOL_ERROR", err)
	}
	if !headerOK && fe.Code != frame.CodeProtocol && fe.Code != frame.CodeFrameSize {
		t.Fatalf("a bad header was reported as %v; want PROTOCOL_ERROR or FRAME_SIZE_ERROR", err)
	}
}

// codeOf returns the code of a *frame.Error, or a code no error carries so
// that asFrameError reports anything else.
func codeOf(err error) frame.Code {
	var fe *frame.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return frame.Code(0xFFFFFFFF)
}

// sentinelPing follows every fuzzed frame, so a frame whose payload is
// consumed wrongly shows up as a corrupt next frame.
const sentinelPing = 0x5E471E1

// FuzzRoundTrip encodes a fuzzed (type, stream, value, payload) with the
// package's Append functions, or by hand where no function can express the
// combination, and decodes it. Combinations the protocol allows must come
// back equal; the rest must be rejected with a session *Error.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(frame.TypeData), uint32(1), uint64(0), []byte("hello"))
	f.Add(uint8(frame.TypeData), uint32(0), uint64(0), []byte("on stream 0"))
	f.Add(uint8(frame.TypeData), uint32(1<<31), uint64(0), []byte{})
	f.Add(uint8(frame.TypeOpen), uint32(1<<31-1), uint64(0), []byte(nil))
	f.Add(uint8(frame.TypeClose), uint32(0), uint64(0), []byte(nil))
	f.Add(uint8(frame.TypeReset), uint32(3), uint64(frame.CodeCancel), []byte(nil))
	f.Add(uint8(frame.TypeWindowUpdate), uint32(0), uint64(1<<40+5), []byte(nil))
	f.Add(uint8(frame.TypePing), uint32(0), uint64(1<<63), []byte(nil))
	f.Add(uint8(frame.TypePong), uint32(9), uint64(1), []byte(nil))
	f.Add(uint8(frame.TypeGoAway), uint32(0), uint64(frame.CodeProtocol), []byte(nil))
	f.Add(uint8(frame.TypeSettings), uint32(0), uint64(frame.SettingInitialStreamWindow)<<32|1<<20, []byte(nil))
	f.Add(uint8(200), uint32(0), uint64(0), []byte("x"))

	f.Fuzz(func(t *testing.T, typ uint8, stream uint32, value uint64, payload []byte) {
		ft := frame.Type(typ)
		want := frame.Header{Type: ft, StreamID: stream}
		var b, wire []byte
		switch ft {
		case frame.TypeData:
			b = append(frame.AppendData(nil, stream, len(payload)), payload...)
			want.Length = uint32(len(payload))
			wire = append(rawHeader(want.Length, typ, 0, 0, 0, stream), payload...)
		case frame.TypeOpen:
			b = frame.AppendOpen(nil, stream)
		case frame.TypeClose:
			b = frame.AppendClose(nil, stream)
		case frame.TypeReset:
			b = frame.AppendReset(nil, stream, frame.Code(value))
			want.Length, want.Value = 4, uint64(uint32(value))
		case frame.TypeWindowUpdate:
			b = frame.AppendWindowUpdate(nil, stream, uint32(value))
			want.Length, want.Value = 4, uint64(uint32(value))
		case frame.TypePing, frame.TypePong:
			want.Length, want.Value = 8, value
			if stream == 0 {
				b = frame.AppendPing(nil, ft == frame.TypePong, value)
			} else {
				b = append(frame.AppendHeader(nil, ft, stream, 8), beBytes(value, 8)...)
			}
		case frame.TypeGoAway:
			want.Length, want.Value = 4, uint64(uint32(value))
			if stream == 0 {
				b = frame.AppendGoAway(nil, frame.Code(value))
			} else {
				b = append(frame.AppendHeader(nil, ft, stream, 4), beBytes(value, 4)...)
			}
		case frame.TypeSettings:
			want.Length, want.Value = 8, value
			if stream == 0 {
				b = frame.AppendSettings(nil, false, uint32(value>>32), uint32(value))
			} else {
				b = append(frame.AppendHeader(nil, ft, stream, 8), beBytes(value, 8)...)
			}
		default:
			want.Length = uint32(len(payload))
			b = append(frame.AppendHeader(nil, ft, stream, want.Length), payload...)
			wire = append(rawHeader(want.Length, typ, 0, 0, 0, stream), payload...)
		}
		if wire == nil {
			wire = rawHeader(want.Length, typ, 0, 0, 0, stream)
			if wireRules[ft].fixed {
				wire = append(wire, beBytes(want.Value, int(want.Length))...)
			}
		}
		if !bytes.Equal(b, wire) {
			t.Fatalf("%s stream=%d value=%d encoded as % x; the layout says % x", ft, stream, value, b, wire)
		}

		b = frame.AppendPing(b, false, sentinelPing)
		r := frame.NewReader(bytes.NewReader(b), 16)
		h, err := r.Next()
		if !ruleAllows(ft, want.Length, stream) {
			if err == nil {
				t.Fatalf("%+v was accepted; the protocol forbids it", h)
			}
			asFrameError(t, err, codeOf(err))
			return
		}
		if err != nil {
			t.Fatalf("valid %+v rejected: %v", want, err)
		}
		if h != want {
			t.Fatalf("decoded %+v; sent %+v", h, want)
		}
		if ft == frame.TypeData {
			got := make([]byte, h.Length)
			if err := r.ReadPayload(h, got); err != nil {
				t.Fatalf("reading the %d-byte payload: %v", h.Length, err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("payload came back different")
			}
		}
		h, err = r.Next()
		if err != nil || h.Type != frame.TypePing || h.Value != sentinelPing {
			t.Fatalf("frame after %s: %+v, %v; want the sentinel PING", ft, h, err)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("after the last frame got %v; want io.EOF", err)
		}
	})
}
