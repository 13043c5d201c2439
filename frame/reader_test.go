package frame_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/sluicehq/sluice/frame"
)

// wireFrame is one frame as the test expects to decode it.
type wireFrame struct {
	hdr     frame.Header
	payload []byte // DATA only
}

// buildStream encodes a preface and one frame of every kind with the
// package's Append functions, and returns the bytes with the frames the
// decoder must find in them. dataSizes sets the DATA payloads sent.
func buildStream(dataSizes ...int) ([]byte, []wireFrame) {
	b := frame.AppendPreface(nil)
	var want []wireFrame
	add := func(h frame.Header, payload []byte) { want = append(want, wireFrame{h, payload}) }

	b = frame.AppendOpen(b, 1)
	add(frame.Header{Type: frame.TypeOpen, StreamID: 1}, nil)
	for i, n := range dataSizes {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(i*31 + j)
		}
		id := uint32(1 + 2*i)
		b = frame.AppendData(b, id, n)
		b = append(b, p...)
		add(frame.Header{Length: uint32(n), Type: frame.TypeData, StreamID: id}, p)
	}
	b = frame.AppendWindowUpdate(b, 0, frame.MaxWindow)
	add(frame.Header{Length: 4, Type: frame.TypeWindowUpdate, Value: frame.MaxWindow}, nil)
	b = frame.AppendWindowUpdate(b, 1, 1)
	add(frame.Header{Length: 4, Type: frame.TypeWindowUpdate, StreamID: 1, Value: 1}, nil)
	b = frame.AppendReset(b, 3, frame.CodeCancel)
	add(frame.Header{Length: 4, Type: frame.TypeReset, StreamID: 3, Value: uint64(frame.CodeCancel)}, nil)
	b = frame.AppendPing(b, false, 0xDEADBEEFCAFEF00D)
	add(frame.Header{Length: 8, Type: frame.TypePing, Value: 0xDEADBEEFCAFEF00D}, nil)
	b = frame.AppendPing(b, true, 1)
	add(frame.Header{Length: 8, Type: frame.TypePong, Value: 1}, nil)
	b = frame.AppendClose(b, 1)
	add(frame.Header{Type: frame.TypeClose, StreamID: 1}, nil)
	b = frame.AppendReset(b, 1<<31-1, frame.Code(0xFFFFFFFF))
	add(frame.Header{Length: 4, Type: frame.TypeReset, StreamID: 1<<31 - 1, Value: 0xFFFFFFFF}, nil)
	b = frame.AppendGoAway(b, frame.CodeNoError)
	add(frame.Header{Length: 4, Type: frame.TypeGoAway, Value: uint64(frame.CodeNoError)}, nil)
	return b, want
}

// drain reads a preface and then frames until an error, consuming DATA
// payloads with ReadPayload or (discard) Discard. It returns what it decoded
// and the error that stopped it.
func drain(r *frame.Reader, discard bool) ([]wireFrame, error) {
	if err := r.ReadPreface(); err != nil {
		return nil, err
	}
	var got []wireFrame
	buf := make([]byte, frame.MaxDataPayload)
	for {
		h, err := r.Next()
		if err != nil {
			return got, err
		}
		var p []byte
		if h.Type == frame.TypeData {
			if discard {
				err = r.Discard(h)
			} else {
				err = r.ReadPayload(h, buf[:h.Length])
				p = bytes.Clone(buf[:h.Length])
			}
			if err != nil {
				return got, err
			}
		}
		got = append(got, wireFrame{h, p})
	}
}

func TestRoundTripEveryFrame(t *testing.T) {
	stream, want := buildStream(1000, 0, frame.MaxDataPayload, 1)
	sources := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one-byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data-err": iotest.DataErrReader,
	}
	for name, wrap := range sources {
		for _, bufSize := range []int{16, 4096, 1 << 20} {
			for _, discard := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/buf=%d/discard=%v", name, bufSize, discard), func(t *testing.T) {
					r := frame.NewReader(wrap(bytes.NewReader(stream)), bufSize)
					got, err := drain(r, discard)
					if err != io.EOF {
						t.Fatalf("stream ended with %v; want io.EOF at the frame boundary", err)
					}
					if len(got) != len(want) {
						t.Fatalf("decoded %d frames; want %d", len(got), len(want))
					}
					for i := range want {
						if got[i].hdr != want[i].hdr {
							t.Errorf("frame %d: header %+v; want %+v", i, got[i].hdr, want[i].hdr)
						}
						if !discard && !bytes.Equal(got[i].payload, want[i].payload) {
							t.Errorf("frame %d: payload of %d bytes differs from the %d sent", i, len(got[i].payload), len(want[i].payload))
						}
					}
				})
			}
		}
	}
}

// TestAppendLayout checks every encoder against the byte layout drawn in
// the protocol document, built by hand in rawHeader and beBytes.
func TestAppendLayout(t *testing.T) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	prefix := []byte("keep") // Append must add to b, not overwrite it
	cases := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"preface", frame.AppendPreface(prefix), cat(prefix, []byte("SLUICE"), []byte{0, 1})},
		{"header", frame.AppendHeader(prefix, frame.TypeData, 0x01020304, 0x0A0B0C0D), cat(prefix, rawHeader(0x0A0B0C0D, 0, 0, 0, 0, 0x01020304))},
		{"data", frame.AppendData(prefix, 9, 513), cat(prefix, rawHeader(513, 0, 0, 0, 0, 9))},
		{"open", frame.AppendOpen(prefix, 1<<31-1), cat(prefix, rawHeader(0, 1, 0, 0, 0, 1<<31-1))},
		{"close", frame.AppendClose(prefix, 2), cat(prefix, rawHeader(0, 2, 0, 0, 0, 2))},
		{"reset", frame.AppendReset(prefix, 3, frame.CodeRefusedStream), cat(prefix, rawHeader(4, 3, 0, 0, 0, 3), beBytes(6, 4))},
		{"window update", frame.AppendWindowUpdate(prefix, 0, 0x80000001), cat(prefix, rawHeader(4, 4, 0, 0, 0, 0), beBytes(0x80000001, 4))},
		{"ping", frame.AppendPing(prefix, false, 0x0102030405060708), cat(prefix, rawHeader(8, 5, 0, 0, 0, 0), beBytes(0x0102030405060708, 8))},
		{"pong", frame.AppendPing(prefix, true, 0xFFFFFFFFFFFFFFFF), cat(prefix, rawHeader(8, 6, 0, 0, 0, 0), beBytes(0xFFFFFFFFFFFFFFFF, 8))},
		{"goaway", frame.AppendGoAway(prefix, frame.CodeVersion), cat(prefix, rawHeader(4, 7, 0, 0, 0, 0), beBytes(9, 4))},
	}
	for _, c := range cases {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s: encoded % x; want % x", c.name, c.got, c.want)
		}
	}
}

func TestPrefaceAccepted(t *testing.T) {
	p := frame.AppendPreface(nil)
	if len(p) != frame.PrefaceSize {
		t.Fatalf("AppendPreface wrote %d bytes; PrefaceSize is %d", len(p), frame.PrefaceSize)
	}
	if err := frame.ParsePreface(p); err != nil {
		t.Fatalf("ParsePreface rejected our own preface: %v", err)
	}
	r := frame.NewReader(bytes.NewReader(frame.AppendOpen(p, 1)), 64)
	if err := r.ReadPreface(); err != nil {
		t.Fatalf("ReadPreface rejected our own preface: %v", err)
	}
	// The preface must be consumed exactly: the next frame follows it.
	if h, err := r.Next(); err != nil || h.Type != frame.TypeOpen || h.StreamID != 1 {
		t.Fatalf("frame after the preface: %+v, %v; want OPEN on stream 1", h, err)
	}
}

func TestPrefaceWrongMagic(t *testing.T) {
	cases := map[string][]byte{
		"one letter off":   []byte("SLUICX\x00\x01"),
		"lower case":       []byte("sluice\x00\x01"),
		"HTTP request":     []byte("GET / HT"),
		"TLS ClientHello":  {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01},
		"zeros":            make([]byte, 8),
		"frame, not magic": rawHeader(0, 1, 0, 0, 0, 1)[:8],
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			fe := asFrameError(t, frame.ParsePreface(p), frame.CodeVersion)
			if !strings.Contains(fe.Reason, "preface") {
				t.Errorf("reason %q does not say the preface was wrong", fe.Reason)
			}
			r := frame.NewReader(bytes.NewReader(p), 16)
			asFrameError(t, r.ReadPreface(), frame.CodeVersion)
		})
	}
}

func TestPrefaceWrongVersion(t *testing.T) {
	for _, v := range []uint16{0, 2, 0x0100, 0xFFFF} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			p := append([]byte(frame.Magic), byte(v>>8), byte(v))
			r := frame.NewReader(bytes.NewReader(p), 16)
			fe := asFrameError(t, r.ReadPreface(), frame.CodeVersion)
			theirs := fmt.Sprintf("version %d", v)
			ours := fmt.Sprintf("version %d", frame.Version)
			if !strings.Contains(fe.Reason, theirs) || !strings.Contains(fe.Reason, ours) {
				t.Errorf("reason %q must name the peer's %s and our %s", fe.Reason, theirs, ours)
			}
		})
	}
}

func TestParsePrefaceWrongLength(t *testing.T) {
	full := frame.AppendPreface(nil)
	for _, p := range [][]byte{nil, full[:1], full[:6], full[:7], append(bytes.Clone(full), 0)} {
		asFrameError(t, frame.ParsePreface(p), frame.CodeVersion)
	}
}

func TestPrefaceTruncated(t *testing.T) {
	full := frame.AppendPreface(nil)
	for n := 0; n < frame.PrefaceSize; n++ {
		r := frame.NewReader(bytes.NewReader(full[:n]), 16)
		fe := asFrameError(t, r.ReadPreface(), frame.CodeVersion)
		if !strings.Contains(fe.Reason, "preface") {
			t.Errorf("%d bytes: reason %q does not mention the preface", n, fe.Reason)
		}
	}
}

// TestTruncatedAnywhere cuts a stream holding every kind of frame at every
// byte. A cut on a frame boundary is a clean io.EOF; a cut anywhere else is
// a session *Error, never a panic and never io.ErrUnexpectedEOF.
func TestTruncatedAnywhere(t *testing.T) {
	stream, want := buildStream(300, 0, 17)
	boundaries := map[int]bool{frame.PrefaceSize: true}
	off := frame.PrefaceSize
	for _, f := range want {
		off += frame.HeaderSize + int(f.hdr.Length)
		boundaries[off] = true
	}
	if off != len(stream) {
		t.Fatalf("expected frames cover %d bytes; the stream has %d", off, len(stream))
	}
	for k := 0; k <= len(stream); k++ {
		for _, discard := range []bool{false, true} {
			r := frame.NewReader(bytes.NewReader(stream[:k]), 16)
			_, err := drain(r, discard)
			switch {
			case k < frame.PrefaceSize:
				asFrameError(t, err, frame.CodeVersion)
			case boundaries[k]:
				if err != io.EOF {
					t.Fatalf("cut at frame boundary %d: got %v; want io.EOF", k, err)
				}
			default:
				fe := asFrameError(t, err, frame.CodeProtocol)
				if !strings.Contains(fe.Reason, "closed in the middle") {
					t.Errorf("cut at %d: reason %q does not say the connection closed mid-frame", k, fe.Reason)
				}
			}
		}
	}
}

// TestIOErrorPassesThrough checks that a failing connection surfaces its own
// error, not a protocol error, wherever the failure lands.
func TestIOErrorPassesThrough(t *testing.T) {
	errConn := errors.New("connection reset by test")
	stream, _ := buildStream(300, 0, 17)
	for k := 0; k <= len(stream); k++ {
		for _, discard := range []bool{false, true} {
			src := io.MultiReader(bytes.NewReader(stream[:k]), iotest.ErrReader(errConn))
			_, err := drain(frame.NewReader(src, 16), discard)
			if !errors.Is(err, errConn) {
				t.Fatalf("failure after %d bytes: got %v; want the connection's own error", k, err)
			}
			var fe *frame.Error
			if errors.As(err, &fe) {
				t.Fatalf("failure after %d bytes was reported as a protocol error: %v", k, err)
			}
		}
	}
}

// TestNextRejectsBadHeader checks that Next reports a bad header as the
// *Error ParseHeader gives, without reading past it.
func TestNextRejectsBadHeader(t *testing.T) {
	stream := frame.AppendPreface(nil)
	stream = append(stream, rawHeader(8, byte(frame.TypePing), 0, 0, 0, 7)...)
	r := frame.NewReader(bytes.NewReader(stream), 16)
	if err := r.ReadPreface(); err != nil {
		t.Fatal(err)
	}
	_, err := r.Next()
	asFrameError(t, err, frame.CodeProtocol)
}

func TestReadPayloadIntoLargerBuffer(t *testing.T) {
	stream := frame.AppendData(nil, 5, 3)
	stream = append(stream, 'a', 'b', 'c')
	stream = frame.AppendOpen(stream, 7)
	r := frame.NewReader(bytes.NewReader(stream), 16)
	h, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 10)
	if err := r.ReadPayload(h, dst); err != nil {
		t.Fatal(err)
	}
	if string(dst[:3]) != "abc" || dst[3] != 0 {
		t.Fatalf("ReadPayload wrote %q; want exactly \"abc\" and nothing past it", dst)
	}
	if h, err := r.Next(); err != nil || h.Type != frame.TypeOpen || h.StreamID != 7 {
		t.Fatalf("frame after the payload: %+v, %v; want OPEN on stream 7", h, err)
	}
}
