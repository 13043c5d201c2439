package control

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderVersion is the first byte of every StreamHeader.
const HeaderVersion = 1

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
type StreamHeader struct {
	Tunnel     uint32
	RemoteAddr string
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
	b = append(b, HeaderVersion)
	b = binary.BigEndian.AppendUint32(b, h.Tunnel)
	b = append(b, byte(len(addr)))
	return append(b, addr...)
}

// ReadHeader reads a StreamHeader from r. It reads exactly the header's bytes,
// so whatever follows on r is the connection's data.
func ReadHeader(r io.Reader) (StreamHeader, error) {
	var fixed [6]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return StreamHeader{}, fmt.Errorf("control: read stream header: %w", err)
	}
	if fixed[0] != HeaderVersion {
		return StreamHeader{}, fmt.Errorf("%w: version byte %d, this build speaks %d", ErrBadHeader, fixed[0], HeaderVersion)
	}
	h := StreamHeader{Tunnel: binary.BigEndian.Uint32(fixed[1:5])}
	if n := int(fixed[5]); n > 0 {
		var addr [MaxAddrLen]byte
		if _, err := io.ReadFull(r, addr[:n]); err != nil {
			return StreamHeader{}, fmt.Errorf("control: read stream header address: %w", err)
		}
		h.RemoteAddr = string(addr[:n])
	}
	return h, nil
}
