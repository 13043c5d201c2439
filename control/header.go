package control

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderVersion is the first byte of a StreamHeader that carries the remote
// address only; HeaderVersion2 adds the local address. The edge writes
// version 2 only on tunnels whose Register asked for it (ProxyProtocol, or a
// UDP tunnel), so an agent that knows only version 1 never receives one.
const (
	HeaderVersion  = 1
	HeaderVersion2 = 2
)

// MaxAddrLen bounds the remote address carried in a StreamHeader.
const MaxAddrLen = 255

// StreamHeader is what the edge writes first on every stream it opens for a
// public connection: which tunnel the connection belongs to and who the public
// client is. It is 6 bytes plus the address.
//
//	byte 0     HeaderVersion
//	bytes 1-4  tunnel ID, big-endian (Assigned.Tunnel)
//	byte 5     length N of the remote address
//	N bytes    remote address, "ip:port"
//
// Version 2 then has one more length byte M and M bytes of local address:
// the public address the client connected to, for PROXY protocol headers.
type StreamHeader struct {
	Tunnel     uint32
	RemoteAddr string
	// LocalAddr is written only when WithLocal is set (version 2).
	LocalAddr string
	WithLocal bool
}

// ErrBadHeader is returned when a stream does not start with a valid header.
var ErrBadHeader = errors.New("control: stream header is malformed (edge and agent speak different versions?)")

// AppendHeader appends the encoding of h to b. An address longer than
// MaxAddrLen is dropped rather than truncated, because half an address misleads.
func AppendHeader(b []byte, h StreamHeader) []byte {
	addr := h.RemoteAddr
	if len(addr) > MaxAddrLen {
		addr = ""
	}
	version := byte(HeaderVersion)
	if h.WithLocal {
		version = HeaderVersion2
	}
	b = append(b, version)
	b = binary.BigEndian.AppendUint32(b, h.Tunnel)
	b = append(b, byte(len(addr)))
	b = append(b, addr...)
	if h.WithLocal {
		local := h.LocalAddr
		if len(local) > MaxAddrLen {
			local = ""
		}
		b = append(b, byte(len(local)))
		b = append(b, local...)
	}
	return b
}

// ReadHeader reads a StreamHeader from r. It reads exactly the header's bytes,
// so whatever follows on r is the connection's data.
func ReadHeader(r io.Reader) (StreamHeader, error) {
	var fixed [6]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return StreamHeader{}, fmt.Errorf("control: read stream header: %w", err)
	}
	if fixed[0] != HeaderVersion && fixed[0] != HeaderVersion2 {
		return StreamHeader{}, fmt.Errorf("%w: version byte %d, this build speaks %d and %d", ErrBadHeader, fixed[0], HeaderVersion, HeaderVersion2)
	}
	h := StreamHeader{Tunnel: binary.BigEndian.Uint32(fixed[1:5]), WithLocal: fixed[0] == HeaderVersion2}
	var addr [MaxAddrLen + 1]byte
	n := int(fixed[5])
	want := n
	if h.WithLocal {
		want++ // the local address's length byte comes with the remote address
	}
	if want > 0 {
		if _, err := io.ReadFull(r, addr[:want]); err != nil {
			return StreamHeader{}, fmt.Errorf("control: read stream header address: %w", err)
		}
		h.RemoteAddr = string(addr[:n])
	}
	if h.WithLocal {
		if m := int(addr[n]); m > 0 {
			if _, err := io.ReadFull(r, addr[:m]); err != nil {
				return StreamHeader{}, fmt.Errorf("control: read stream header local address: %w", err)
			}
			h.LocalAddr = string(addr[:m])
		}
	}
	return h, nil
}
