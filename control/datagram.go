package control

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxDatagram is the largest datagram a UDP tunnel carries: the most a
// 2-byte length can say, above the 65,507-byte payload limit of UDP over
// IPv4, so every datagram a socket can receive fits.
const MaxDatagram = 65535

// DatagramOverhead is the length prefix before each datagram on a stream.
const DatagramOverhead = 2

// ErrDatagramTooLarge is returned by AppendDatagram for a payload over
// MaxDatagram.
var ErrDatagramTooLarge = errors.New("control: datagram larger than 65,535 bytes")

// AppendDatagram appends one datagram as it travels on a UDP tunnel's
// stream: a 2-byte big-endian length, then the payload. The length keeps the
// datagram's boundary however the mux splits the bytes into frames.
func AppendDatagram(b, p []byte) ([]byte, error) {
	if len(p) > MaxDatagram {
		return b, ErrDatagramTooLarge
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	return append(b, p...), nil
}

// ReadDatagramLen reads the length prefix of the next datagram on r; the
// caller then reads exactly that many bytes (ReadDatagram does both). It
// returns io.EOF, unwrapped, when r ends cleanly between datagrams.
func ReadDatagramLen(r io.Reader) (int, error) {
	var l [DatagramOverhead]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		if err == io.EOF {
			return 0, io.EOF
		}
		return 0, fmt.Errorf("control: read datagram length: %w", err)
	}
	return int(binary.BigEndian.Uint16(l[:])), nil
}

// ReadDatagram reads one datagram from r into buf, which must hold
// MaxDatagram bytes, and returns its length. A stream that ends inside a
// datagram is an error: half a datagram is never delivered.
func ReadDatagram(r io.Reader, buf []byte) (int, error) {
	n, err := ReadDatagramLen(r)
	if err != nil {
		return 0, err
	}
	if n > len(buf) {
		return 0, fmt.Errorf("control: datagram of %d bytes does not fit a %d-byte buffer", n, len(buf))
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return 0, fmt.Errorf("control: datagram of %d bytes cut short: %w", n, noEOF(err))
	}
	return n, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
