// Package proxyproto writes and parses the PROXY protocol header (versions 1
// and 2, as specified by HAProxy's proxy-protocol.txt) that tells a server
// the real client address of a connection relayed by a proxy.
//
// The agent writes a header to the local service at the start of each
// connection of a tunnel that asks for one; the edge parses headers from the
// load balancers it is told to trust (see Listener) and refuses them from
// everyone else. docs/CONTROL.md describes both.
package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// The two header versions.
const (
	V1 = 1 // a line of text
	V2 = 2 // binary
)

// v1Sig starts a version 1 header; v2Sig starts a version 2 header.
var (
	v1Sig = []byte("PROXY ")
	v2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// v1MaxLen is the longest version 1 line the specification allows, CRLF
// included.
const v1MaxLen = 107

// Header is a parsed PROXY header.
type Header struct {
	Version int
	// Local is true for a header that carries no addresses: a version 2 LOCAL
	// command (a load balancer's own health check) or a version 1 UNKNOWN
	// line. The connection's own addresses then stand.
	Local bool
	// Source is the client the proxy accepted; Dest is the address that
	// client connected to.
	Source, Dest netip.AddrPort
}

// ErrNotProxy is returned by Read when the connection does not start with a
// PROXY header.
var ErrNotProxy = errors.New("proxyproto: connection does not start with a PROXY protocol header")

// ParseVersion maps the names users write ("v1", "v2") to a version.
func ParseVersion(s string) (int, error) {
	switch s {
	case "v1":
		return V1, nil
	case "v2":
		return V2, nil
	}
	return 0, fmt.Errorf("PROXY protocol version %q: use v1 or v2", s)
}

// Append appends a header of the given version carrying src and dst to b.
// An invalid src, or a src and dst that are not both addresses, writes the
// header that says "no address" (v1 UNKNOWN, v2 LOCAL), so the receiver falls
// back to the connection's own addresses rather than trusting a made-up one.
func Append(b []byte, version int, src, dst netip.AddrPort) []byte {
	src, dst, v4, ok := pair(src, dst)
	if version == V1 {
		if !ok {
			return append(b, "PROXY UNKNOWN\r\n"...)
		}
		fam := "TCP6"
		if v4 {
			fam = "TCP4"
		}
		b = append(b, "PROXY "...)
		b = append(b, fam...)
		b = append(b, ' ')
		b = src.Addr().AppendTo(b)
		b = append(b, ' ')
		b = dst.Addr().AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(src.Port()), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(dst.Port()), 10)
		return append(b, "\r\n"...)
	}
	b = append(b, v2Sig...)
	if !ok {
		// LOCAL command, unspecified family, no address block.
		return append(b, 0x20, 0x00, 0, 0)
	}
	b = append(b, 0x21) // version 2, PROXY command
	if v4 {
		b = append(b, 0x11, 0, 12) // AF_INET, STREAM; 12 address bytes
		s4, d4 := src.Addr().As4(), dst.Addr().As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = append(b, 0x21, 0, 36) // AF_INET6, STREAM; 36 address bytes
		s16, d16 := src.Addr().As16(), dst.Addr().As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

// pair brings src and dst to one family, which both versions require: both
// IPv4 (an IPv4-mapped IPv6 address counts as IPv4) or both IPv6 (an IPv4
// address beside an IPv6 one is written mapped). ok is false when either is
// not a valid address; a missing dst alone is written as the unspecified
// address of src's family, port 0.
func pair(src, dst netip.AddrPort) (s, d netip.AddrPort, v4, ok bool) {
	if !src.IsValid() {
		return src, dst, false, false
	}
	sa := src.Addr().Unmap()
	if !dst.IsValid() {
		if sa.Is4() {
			dst = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
		} else {
			dst = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
		}
	}
	da := dst.Addr().Unmap()
	if sa.Is4() && da.Is4() {
		return netip.AddrPortFrom(sa, src.Port()), netip.AddrPortFrom(da, dst.Port()), true, true
	}
	sa, da = netip.AddrFrom16(sa.As16()), netip.AddrFrom16(da.As16())
	return netip.AddrPortFrom(sa.WithZone(""), src.Port()), netip.AddrPortFrom(da.WithZone(""), dst.Port()), false, true
}

// Read parses one PROXY header from r, consuming exactly its bytes (TLVs of
// a version 2 header are skipped). It returns ErrNotProxy, having consumed
// nothing, when r does not start with a signature, and an error saying what
// is wrong for a header that starts like one but is malformed.
func Read(r *bufio.Reader) (Header, error) {
	first, err := r.Peek(1)
	if err != nil {
		return Header{}, fmt.Errorf("proxyproto: reading the header: %w", err)
	}
	switch first[0] {
	case 'P':
		if p, err := r.Peek(len(v1Sig)); err != nil || !bytes.Equal(p, v1Sig) {
			if err != nil && !errors.Is(err, io.EOF) {
				return Header{}, fmt.Errorf("proxyproto: reading the header: %w", err)
			}
			return Header{}, ErrNotProxy
		}
		return readV1(r)
	case '\r':
		if p, err := r.Peek(len(v2Sig)); err != nil || !bytes.Equal(p, v2Sig) {
			if err != nil && !errors.Is(err, io.EOF) {
				return Header{}, fmt.Errorf("proxyproto: reading the header: %w", err)
			}
			return Header{}, ErrNotProxy
		}
		return readV2(r)
	}
	return Header{}, ErrNotProxy
}

func readV1(r *bufio.Reader) (Header, error) {
	var line []byte
	for len(line) < v1MaxLen {
		c, err := r.ReadByte()
		if err != nil {
			return Header{}, fmt.Errorf("proxyproto: v1 header cut short after %d bytes: %w", len(line), noEOF(err))
		}
		line = append(line, c)
		if c == '\n' {
			break
		}
	}
	if !bytes.HasSuffix(line, []byte("\r\n")) {
		return Header{}, fmt.Errorf("proxyproto: v1 header has no CRLF within %d bytes", v1MaxLen)
	}
	fields := bytes.Split(line[len(v1Sig):len(line)-2], []byte(" "))
	h := Header{Version: V1}
	switch string(fields[0]) {
	case "UNKNOWN":
		// The receiver must ignore whatever follows UNKNOWN on the line.
		h.Local = true
		return h, nil
	case "TCP4", "TCP6":
	default:
		return Header{}, fmt.Errorf("proxyproto: v1 header has protocol %q: expected TCP4, TCP6 or UNKNOWN", fields[0])
	}
	if len(fields) != 5 {
		return Header{}, fmt.Errorf("proxyproto: v1 header has %d fields after the protocol, expected 4 (source, destination, source port, destination port)", len(fields)-1)
	}
	v4 := string(fields[0]) == "TCP4"
	var addrs [2]netip.Addr
	for i := range addrs {
		a, err := netip.ParseAddr(string(fields[1+i]))
		if err != nil || a.Zone() != "" || a.Is4() != v4 {
			return Header{}, fmt.Errorf("proxyproto: v1 header address %q is not an %s address", fields[1+i], fields[0])
		}
		addrs[i] = a
	}
	var ports [2]uint16
	for i := range ports {
		f := fields[3+i]
		n, err := strconv.ParseUint(string(f), 10, 16)
		if err != nil || (len(f) > 1 && f[0] == '0') {
			return Header{}, fmt.Errorf("proxyproto: v1 header port %q is not a number in 0-65535", f)
		}
		ports[i] = uint16(n)
	}
	h.Source = netip.AddrPortFrom(addrs[0], ports[0])
	h.Dest = netip.AddrPortFrom(addrs[1], ports[1])
	return h, nil
}

func readV2(r *bufio.Reader) (Header, error) {
	var fixed [16]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return Header{}, fmt.Errorf("proxyproto: v2 header cut short: %w", noEOF(err))
	}
	verCmd, fam := fixed[12], fixed[13]
	n := int(binary.BigEndian.Uint16(fixed[14:16]))
	if verCmd>>4 != 2 {
		return Header{}, fmt.Errorf("proxyproto: v2 header has version %d, expected 2", verCmd>>4)
	}
	cmd := verCmd & 0x0f
	if cmd > 1 {
		return Header{}, fmt.Errorf("proxyproto: v2 header has command %d, expected LOCAL (0) or PROXY (1)", cmd)
	}
	h := Header{Version: V2, Local: cmd == 0}
	var need int
	switch fam >> 4 {
	case 0: // AF_UNSPEC
	case 1:
		need = 12
	case 2:
		need = 36
	case 3:
		need = 216 // AF_UNIX: no IP address to take from it
	default:
		return Header{}, fmt.Errorf("proxyproto: v2 header has address family %d, expected 0-3", fam>>4)
	}
	if n < need {
		return Header{}, fmt.Errorf("proxyproto: v2 header announces %d address bytes, its family needs %d", n, need)
	}
	// At most 216 address bytes are kept; TLVs past them are skipped.
	var block [216]byte
	if _, err := io.ReadFull(r, block[:need]); err != nil {
		return Header{}, fmt.Errorf("proxyproto: v2 header address block cut short: %w", noEOF(err))
	}
	if _, err := r.Discard(n - need); err != nil {
		return Header{}, fmt.Errorf("proxyproto: v2 header extensions cut short: %w", noEOF(err))
	}
	if h.Local {
		return h, nil // LOCAL: the addresses, if any, must be ignored
	}
	switch fam >> 4 {
	case 1:
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(block[0:4])), binary.BigEndian.Uint16(block[8:10]))
		h.Dest = netip.AddrPortFrom(netip.AddrFrom4([4]byte(block[4:8])), binary.BigEndian.Uint16(block[10:12]))
	case 2:
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(block[0:16])), binary.BigEndian.Uint16(block[32:34]))
		h.Dest = netip.AddrPortFrom(netip.AddrFrom16([16]byte(block[16:32])), binary.BigEndian.Uint16(block[34:36]))
	default:
		// PROXY over AF_UNSPEC or AF_UNIX: nothing an IP server can use.
		h.Local = true
	}
	return h, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
