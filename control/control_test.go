package control

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestMessageRoundTrip(t *testing.T) {
	cases := []Message{
		Hello{Version: Version, Software: "sluice/test"},
		Auth{Token: "secret"},
		Welcome{Version: Version, Software: "edge", Session: "s1"},
		Hello{Version: Version, Fleet: true},
		Welcome{Version: Version, Session: "s2", Edge: "e1", Fleet: []Edge{{ID: "e1", Addr: "10.0.0.1:7835"}, {ID: "e2", Addr: "edge2.example.com:7835"}}},
		Fleet{Edges: []Edge{{ID: "e2", Addr: "edge2.example.com:7835"}}},
		Register{Ref: 7, Kind: KindHTTP, Name: "myapp", Hostname: "app.example.com"},
		Register{Ref: 8, Kind: KindTCP, RemotePort: 6002},
		Register{Ref: 9, Kind: KindHTTP, Policy: []byte(`{"on_tcp_connect":[{"actions":[{"type":"deny"}]}]}`), PolicyEvents: true},
		Assigned{Ref: 7, Tunnel: 3, Kind: KindHTTP, Name: "myapp", URL: "http://myapp.localhost:8080"},
		Assigned{Ref: 9, Tunnel: 4, Kind: KindHTTP, Name: "x", URL: "http://x.localhost", Policy: "on_tcp_connect: #1[deny]"},
		PolicyRefused{Tunnel: 4, Source: "agent", Rule: "#1", Action: "deny", Status: 403, Method: "GET", Path: "/", Client: "192.0.2.1", Count: 3},
		&Error{Ref: 8, Code: CodePortTaken, Message: "port 6002 is in use"},
	}
	var buf bytes.Buffer
	for _, m := range cases {
		if err := WriteMessage(&buf, m); err != nil {
			t.Fatalf("write %T: %v", m, err)
		}
	}
	for _, want := range cases {
		got, err := ReadMessage(&buf)
		if err != nil {
			t.Fatalf("read %T: %v", want, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip: got %#v, want %#v", got, want)
		}
	}
	if _, err := ReadMessage(&buf); err != io.EOF {
		t.Fatalf("read past the end: got %v, want io.EOF", err)
	}
}

func frameOf(body string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(b, body...)
}

func TestReadMessageRejects(t *testing.T) {
	cases := []struct {
		name  string
		input []byte
		want  string
	}{
		{"too large", binary.BigEndian.AppendUint32(nil, MaxMessageSize+1), "larger than 64 KiB"},
		{"truncated body", frameOf(`{"type":"hello"`)[:10], "unexpected EOF"},
		{"not json", frameOf(`hello`), "malformed message"},
		{"unknown type", frameOf(`{"type":"teleport","body":{}}`), `unknown message type "teleport"`},
		{"no body", frameOf(`{"type":"auth"}`), "has no body"},
		{"wrong body type", frameOf(`{"type":"register","body":{"ref":"x"}}`), "malformed register"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadMessage(bytes.NewReader(tc.input))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestWriteMessageRejectsOversize(t *testing.T) {
	err := WriteMessage(io.Discard, Auth{Token: strings.Repeat("x", MaxMessageSize)})
	if err == nil || !strings.Contains(err.Error(), "over the") {
		t.Fatalf("got %v, want an over-the-limit error", err)
	}
}

func TestErrorIsAnError(t *testing.T) {
	var err error = &Error{Code: CodeUnauthorized, Message: "token rejected"}
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != CodeUnauthorized {
		t.Fatalf("errors.As failed on %v", err)
	}
	if !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("error text %q does not name the code", err)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	cases := []StreamHeader{
		{Tunnel: 0},
		{Tunnel: 1, RemoteAddr: "127.0.0.1:5555"},
		{Tunnel: 0xFFFFFFFF, RemoteAddr: "[::1]:65535"},
		{Tunnel: 7, RemoteAddr: "203.0.113.5:4000", LocalAddr: "198.51.100.1:443", WithLocal: true},
		{Tunnel: 8, WithLocal: true},
		{Tunnel: 9, LocalAddr: "[2001:db8::1]:53", WithLocal: true},
	}
	for _, h := range cases {
		b := AppendHeader(nil, h)
		b = append(b, "payload"...)
		r := bytes.NewReader(b)
		got, err := ReadHeader(r)
		if err != nil {
			t.Fatalf("read %+v: %v", h, err)
		}
		if got != h {
			t.Fatalf("got %+v, want %+v", got, h)
		}
		rest, _ := io.ReadAll(r)
		if string(rest) != "payload" {
			t.Fatalf("header consumed data: rest %q", rest)
		}
	}
}

func TestHeaderDropsOverlongAddr(t *testing.T) {
	b := AppendHeader(nil, StreamHeader{Tunnel: 5, RemoteAddr: strings.Repeat("a", MaxAddrLen+1)})
	got, err := ReadHeader(bytes.NewReader(b))
	if err != nil || got.Tunnel != 5 || got.RemoteAddr != "" {
		t.Fatalf("got %+v, %v; want tunnel 5 with no address", got, err)
	}
}

func TestHeaderVersionFollowsWithLocal(t *testing.T) {
	if b := AppendHeader(nil, StreamHeader{Tunnel: 1, RemoteAddr: "1.2.3.4:5"}); b[0] != HeaderVersion {
		t.Fatalf("without a local address the header must stay version 1 for older agents, got %d", b[0])
	}
	b := AppendHeader(nil, StreamHeader{Tunnel: 1, RemoteAddr: "1.2.3.4:5", LocalAddr: "6.7.8.9:10", WithLocal: true})
	want := append([]byte{2, 0, 0, 0, 1, 9}, "1.2.3.4:5"...)
	want = append(append(want, 10), "6.7.8.9:10"...)
	if !bytes.Equal(b, want) {
		t.Fatalf("version 2 header = %v, want %v", b, want)
	}
}

func TestReadHeaderRejects(t *testing.T) {
	if _, err := ReadHeader(bytes.NewReader([]byte{2, 0, 0, 0, 1, 1, 'a'})); err == nil {
		t.Fatal("version 2 header without its local length byte: got nil error")
	}
	if _, err := ReadHeader(bytes.NewReader([]byte{2, 0, 0, 0, 1, 0, 5, 'a'})); err == nil {
		t.Fatal("version 2 header with a short local address: got nil error")
	}
	if _, err := ReadHeader(bytes.NewReader([]byte{9, 0, 0, 0, 1, 0})); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("wrong version: got %v, want ErrBadHeader", err)
	}
	if _, err := ReadHeader(bytes.NewReader([]byte{1, 0, 0})); err == nil {
		t.Fatal("short header: got nil error")
	}
	if _, err := ReadHeader(bytes.NewReader([]byte{1, 0, 0, 0, 1, 10, 'a'})); err == nil {
		t.Fatal("short address: got nil error")
	}
}

// TestReadMessageOnlyReturnsWhatCanBeWritten: a message near the size limit
// whose text grows when written again (HTML escaping, U+2028, invalid UTF-8
// becoming U+FFFD) is either written within the limit or refused on read,
// never accepted and then unsendable.
func TestReadMessageOnlyReturnsWhatCanBeWritten(t *testing.T) {
	auth := func(token string) []byte { return frameOf(`{"type":"auth","body":{"token":"` + token + `"}}`) }
	// HTML-special characters are written as they are: 20,000 '<' used
	// to become 120,000 bytes of \u003c.
	m, err := ReadMessage(bytes.NewReader(auth(strings.Repeat("<&>", 20000))))
	if err != nil {
		t.Fatalf("a token of '<&>': %v", err)
	}
	if err := WriteMessage(io.Discard, m); err != nil {
		t.Fatalf("a token of '<&>' read but not written again: %v", err)
	}
	// U+2028 is always escaped (3 bytes become 6): refused on read.
	if _, err := ReadMessage(bytes.NewReader(auth(strings.Repeat("\u2028", 15000)))); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("a token that doubles when written again: %v, want ErrMessageTooLarge", err)
	}
	// Invalid UTF-8 is refused with a clear error.
	if _, err := ReadMessage(bytes.NewReader(auth("\xff\xfe"))); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("invalid UTF-8: %v, want an error naming UTF-8", err)
	}
}

func FuzzReadMessage(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteMessage(&buf, Register{Ref: 1, Kind: KindHTTP, Name: "x"})
	f.Add(buf.Bytes())
	// Near the limit, with text that grows when written again.
	f.Add(frameOf(`{"type":"auth","body":{"token":"` + strings.Repeat("<", 20000) + `"}}`))
	f.Add(frameOf(`{"type":"error","body":{"message":"` + strings.Repeat("\u2028", 15000) + `"}}`))
	f.Add(frameOf(`{"type":"error","body":{"code":"x"}}`))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadMessage(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever decodes must encode again.
		if err := WriteMessage(io.Discard, m); err != nil {
			t.Fatalf("re-encode %T: %v", m, err)
		}
	})
}

func FuzzReadHeader(f *testing.F) {
	f.Add(AppendHeader(nil, StreamHeader{Tunnel: 1, RemoteAddr: "1.2.3.4:5"}))
	f.Add([]byte{1, 0, 0, 0, 0, 255})
	f.Add(AppendHeader(nil, StreamHeader{Tunnel: 2, RemoteAddr: "[::1]:5", LocalAddr: "[::1]:6", WithLocal: true}))
	f.Add([]byte{2, 0, 0, 0, 0, 0, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHeader(bytes.NewReader(data))
		if err != nil {
			return
		}
		again, err := ReadHeader(bytes.NewReader(AppendHeader(nil, h)))
		if err != nil || again != h {
			t.Fatalf("re-encode %+v: got %+v, %v", h, again, err)
		}
	})
}

func TestDatagramsKeepBoundaries(t *testing.T) {
	sizes := []int{0, 1, 1400, MaxDatagram}
	var wire []byte
	for i, n := range sizes {
		var err error
		wire, err = AppendDatagram(wire, bytes.Repeat([]byte{byte(i + 1)}, n))
		if err != nil {
			t.Fatal(err)
		}
	}
	// One byte at a time: boundaries come from the prefix, not from reads.
	r := iotest.OneByteReader(bytes.NewReader(wire))
	buf := make([]byte, MaxDatagram)
	for i, want := range sizes {
		n, err := ReadDatagram(r, buf)
		if err != nil || n != want {
			t.Fatalf("datagram %d: %d bytes, %v; want %d", i, n, err, want)
		}
		if !bytes.Equal(buf[:n], bytes.Repeat([]byte{byte(i + 1)}, n)) {
			t.Fatalf("datagram %d: wrong bytes", i)
		}
	}
	if _, err := ReadDatagram(r, buf); err != io.EOF {
		t.Fatalf("after the last datagram: %v, want io.EOF", err)
	}
}

func TestDatagramErrors(t *testing.T) {
	if _, err := AppendDatagram(nil, make([]byte, MaxDatagram+1)); !errors.Is(err, ErrDatagramTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	buf := make([]byte, MaxDatagram)
	if _, err := ReadDatagram(bytes.NewReader([]byte{0, 5, 'a', 'b'}), buf); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut short: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := ReadDatagram(bytes.NewReader([]byte{0}), buf); err == nil || err == io.EOF {
		t.Fatalf("cut inside the length: %v, want an error other than io.EOF", err)
	}
}

// A Welcome from an edge that lists its fleet reads as the Welcome an
// older agent knows: unknown fields are ignored, so the fleet list costs
// an older agent nothing.
func TestWelcomeWithFleetReadsAsPlainWelcome(t *testing.T) {
	var buf bytes.Buffer
	body := `{"type":"welcome","body":{"version":1,"session":"s","edge":"e1","fleet":[{"id":"e1","addr":"a:1"}],"newer":true}}`
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(body)))
	buf.Write(n[:])
	buf.WriteString(body)
	m, err := ReadMessage(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w, ok := m.(Welcome)
	if !ok || w.Session != "s" || w.Edge != "e1" || len(w.Fleet) != 1 || w.Fleet[0].Addr != "a:1" {
		t.Fatalf("read %#v", m)
	}
}
