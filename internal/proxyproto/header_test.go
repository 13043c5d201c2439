package proxyproto

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestAppendGolden(t *testing.T) {
	v2v4 := append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x11, 0x00, 0x0c,
		192, 168, 0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb)
	cases := []struct {
		name     string
		version  int
		src, dst netip.AddrPort
		want     []byte
	}{
		{"v1 ipv4", V1, ap("192.168.0.1:56324"), ap("192.168.0.11:443"), []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n")},
		{"v1 ipv6", V1, ap("[2001:db8::1]:56324"), ap("[2001:db8::2]:443"), []byte("PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n")},
		{"v1 mapped ipv4 is written as ipv4", V1, ap("[::ffff:10.0.0.1]:1"), ap("10.0.0.2:2"), []byte("PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n")},
		{"v1 mixed families are written as ipv6", V1, ap("10.0.0.1:1"), ap("[2001:db8::2]:2"), []byte("PROXY TCP6 ::ffff:10.0.0.1 2001:db8::2 1 2\r\n")},
		{"v1 no source", V1, netip.AddrPort{}, ap("10.0.0.2:2"), []byte("PROXY UNKNOWN\r\n")},
		{"v1 no destination", V1, ap("10.0.0.1:1"), netip.AddrPort{}, []byte("PROXY TCP4 10.0.0.1 0.0.0.0 1 0\r\n")},
		{"v2 ipv4", V2, ap("192.168.0.1:56324"), ap("192.168.0.11:443"), v2v4},
		{"v2 no source is LOCAL", V2, netip.AddrPort{}, netip.AddrPort{}, append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x20, 0x00, 0, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Append(nil, c.version, c.src, c.dst)
			if !bytes.Equal(got, c.want) {
				t.Fatalf("Append = %q, want %q", got, c.want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	pairs := [][2]string{
		{"203.0.113.7:40000", "198.51.100.1:443"},
		{"[2001:db8::7]:40000", "[2001:db8::1]:443"},
		{"0.0.0.0:0", "255.255.255.255:65535"},
	}
	for _, v := range []int{V1, V2} {
		for _, p := range pairs {
			src, dst := ap(p[0]), ap(p[1])
			wire := Append(nil, v, src, dst)
			wire = append(wire, "after"...)
			br := bufio.NewReader(bytes.NewReader(wire))
			h, err := Read(br)
			if err != nil {
				t.Fatalf("v%d %v: Read: %v", v, p, err)
			}
			if h.Version != v || h.Local || h.Source != src || h.Dest != dst {
				t.Fatalf("v%d %v: got %+v", v, p, h)
			}
			rest, _ := br.ReadString(0)
			if rest != "after" {
				t.Fatalf("v%d %v: bytes after the header = %q, want %q", v, p, rest, "after")
			}
		}
	}
}

func TestReadV2SkipsTLVs(t *testing.T) {
	wire := append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x11, 0x00, 12+7,
		10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0, 81,
		0x04, 0x00, 0x04, 'a', 'w', 's', '!') // a TLV the edge does not use
	wire = append(wire, "data"...)
	br := bufio.NewReader(bytes.NewReader(wire))
	h, err := Read(br)
	if err != nil {
		t.Fatal(err)
	}
	if h.Source != ap("10.0.0.1:80") || h.Dest != ap("10.0.0.2:81") {
		t.Fatalf("got %+v", h)
	}
	if rest, _ := br.ReadString(0); rest != "data" {
		t.Fatalf("after the TLVs: %q", rest)
	}
}

func TestReadLocalCommand(t *testing.T) {
	wire := append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x20, 0x11, 0x00, 12,
		10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0, 81)
	h, err := Read(bufio.NewReader(bytes.NewReader(wire)))
	if err != nil || !h.Local || h.Source.IsValid() {
		t.Fatalf("LOCAL header: %+v, %v (addresses must be ignored)", h, err)
	}
}

func TestReadRejects(t *testing.T) {
	sig := "\r\n\r\n\x00\r\nQUIT\n"
	cases := []struct{ name, in, want string }{
		{"not proxy", "GET / HTTP/1.1\r\n", "does not start"},
		{"v1 bad family", "PROXY UDP4 1.2.3.4 1.2.3.5 1 2\r\n", "expected TCP4"},
		{"v1 family mismatch", "PROXY TCP4 2001:db8::1 1.2.3.5 1 2\r\n", "not an TCP4 address"},
		{"v1 port too big", "PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n", "0-65535"},
		{"v1 port leading zero", "PROXY TCP4 1.2.3.4 1.2.3.5 01 2\r\n", "0-65535"},
		{"v1 missing field", "PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n", "expected 4"},
		{"v1 no CRLF", "PROXY TCP4 " + strings.Repeat("1", 120), "no CRLF"},
		{"v1 bare LF", "PROXY TCP4 1.2.3.4 1.2.3.5 1 2\n", "no CRLF"},
		{"v1 cut short", "PROXY TCP4 1.2.3.4", "cut short"},
		{"v2 bad version", sig + "\x11\x11\x00\x0c" + strings.Repeat("\x00", 12), "version 1"},
		{"v2 bad command", sig + "\x22\x11\x00\x0c" + strings.Repeat("\x00", 12), "command 2"},
		{"v2 bad family", sig + "\x21\x41\x00\x0c" + strings.Repeat("\x00", 12), "family 4"},
		{"v2 short block", sig + "\x21\x21\x00\x0c" + strings.Repeat("\x00", 12), "needs 36"},
		{"v2 cut short", sig + "\x21\x11\x00\x0c\x01\x02", "cut short"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bufio.NewReader(strings.NewReader(c.in)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Read(%q) = %v, want an error containing %q", c.in, err, c.want)
			}
		})
	}
	if _, err := Read(bufio.NewReader(strings.NewReader("GET /"))); !errors.Is(err, ErrNotProxy) {
		t.Fatalf("plain data: %v, want ErrNotProxy", err)
	}
}

func FuzzRead(f *testing.F) {
	f.Add(Append(nil, V1, ap("1.2.3.4:5"), ap("6.7.8.9:10")))
	f.Add(Append(nil, V2, ap("[2001:db8::1]:5"), ap("[2001:db8::2]:10")))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := Read(bufio.NewReader(bytes.NewReader(in)))
		if err != nil || h.Local {
			return
		}
		// What parses writes back to a header that parses the same.
		h2, err := Read(bufio.NewReader(bytes.NewReader(Append(nil, h.Version, h.Source, h.Dest))))
		if err != nil {
			t.Fatalf("re-encoded %+v does not parse: %v", h, err)
		}
		if h2.Source.Addr().Unmap() != h.Source.Addr().Unmap() || h2.Source.Port() != h.Source.Port() || h2.Dest.Port() != h.Dest.Port() {
			t.Fatalf("re-encoded %+v parsed as %+v", h, h2)
		}
	})
}
