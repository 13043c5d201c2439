package frame

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
)

// Reader reads frames from a connection through a read buffer, so that
// many small frames cost one system call.
type Reader struct {
	br  *bufio.Reader
	hdr [HeaderSize]byte
	pre [PrefaceSize]byte
	val [8]byte
}

// NewReader returns a Reader with a read buffer of bufSize bytes.
func NewReader(r io.Reader, bufSize int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufSize)}
}

// ReadPreface reads and validates the peer's connection preface.
func (r *Reader) ReadPreface() error {
	if _, err := io.ReadFull(r.br, r.pre[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return SessionError(CodeVersion, "the connection closed before the sluice preface arrived (got %q); is the peer a sluice endpoint?", r.pre[:])
		}
		return err
	}
	return ParsePreface(r.pre[:])
}

// Next reads the next frame header. Fixed control payloads are read and
// decoded into Header.Value. For DATA, the caller must consume exactly
// Header.Length bytes with ReadPayload or Discard before calling Next again.
// A violation is returned as *Error; I/O failures are returned as they are.
func (r *Reader) Next() (Header, error) {
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Header{}, SessionError(CodeProtocol, "the connection closed in the middle of a frame header")
		}
		return Header{}, err
	}
	h, err := ParseHeader(r.hdr[:])
	if err != nil {
		return h, err
	}
	if specs[h.Type].fixedValue {
		v := r.val[:h.Length]
		if _, err := io.ReadFull(r.br, v); err != nil {
			return h, truncated(h, err)
		}
		if h.Length == 8 {
			h.Value = binary.BigEndian.Uint64(v)
		} else {
			h.Value = uint64(binary.BigEndian.Uint32(v))
		}
	}
	return h, nil
}

// ReadPayload reads the payload of the DATA frame h into dst, which must
// be h.Length bytes long.
func (r *Reader) ReadPayload(h Header, dst []byte) error {
	if _, err := io.ReadFull(r.br, dst[:h.Length]); err != nil {
		return truncated(h, err)
	}
	return nil
}

// Discard skips the payload of the DATA frame h.
func (r *Reader) Discard(h Header) error {
	if _, err := r.br.Discard(int(h.Length)); err != nil {
		return truncated(h, err)
	}
	return nil
}

func truncated(h Header, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return SessionError(CodeProtocol, "the connection closed in the middle of a %s frame's %d-byte payload", h.Type, h.Length)
	}
	return err
}
