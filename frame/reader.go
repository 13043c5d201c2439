package frame

import (
	"encoding/binary"
	"errors"
	"io"
)

// Reader reads frames from a connection. Headers and small frames come
// through a read buffer, so a burst of them costs one system call; a DATA
// payload larger than what is buffered is read straight into the caller's
// buffer, so bulk data is copied once, not twice.
type Reader struct {
	src   io.Reader
	buf   []byte
	limit int // what buf may grow to
	r, w  int // buf[r:w] is buffered and unread
	pre   [PrefaceSize]byte
	err   error // sticky read error of src
	// bulk is set after a large DATA payload. The next header is then read
	// on its own, so that the read does not pull the next bulk payload into
	// buf only to copy it out again.
	bulk bool
}

// initialBufSize is where a Reader's buffer starts. It doubles, up to the
// size given to NewReader, each time one read fills it, so a connection
// that carries bursts of small frames soon reads them in one system call,
// while an idle one (most of a busy edge's agent sessions) holds 512 bytes.
const initialBufSize = 512

// NewReader returns a Reader whose read buffer grows to bufSize bytes.
func NewReader(r io.Reader, bufSize int) *Reader {
	limit := max(bufSize, 4*HeaderSize)
	return &Reader{src: r, buf: make([]byte, min(limit, initialBufSize)), limit: limit}
}

// grow doubles buf, up to limit, keeping what it holds.
func (r *Reader) grow() {
	nb := make([]byte, min(2*len(r.buf), r.limit))
	r.w = copy(nb, r.buf[r.r:r.w])
	r.r = 0
	r.buf = nb
}

// fill makes at least n bytes (n ≤ limit) available in buf[r:w].
// It returns io.EOF if the source ended cleanly before any of them, and
// io.ErrUnexpectedEOF if it ended after some.
func (r *Reader) fill(n int) error {
	if r.w-r.r >= n {
		return nil
	}
	for n > len(r.buf) && len(r.buf) < r.limit {
		r.grow()
	}
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	end := len(r.buf)
	if r.bulk {
		end, r.bulk = n, false
	}
	for empty := 0; r.w < n; {
		if r.err != nil {
			if r.w > 0 && errors.Is(r.err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return r.err
		}
		m, err := r.src.Read(r.buf[r.w:end])
		r.w += m
		if err != nil {
			r.err = err
		}
		if m > 0 && r.w == len(r.buf) && end == len(r.buf) && len(r.buf) < r.limit {
			r.grow()
			end = len(r.buf)
		}
		// A reader that keeps returning nothing and no error would spin
		// here forever; give up the way bufio does.
		if m == 0 && err == nil {
			if empty++; empty >= 100 {
				r.err = io.ErrNoProgress
			}
		}
	}
	return nil
}

// readFull fills dst from the buffer first, then from the source.
func (r *Reader) readFull(dst []byte) error {
	k := copy(dst, r.buf[r.r:r.w])
	r.r += k
	if k == len(dst) {
		return nil
	}
	if r.err != nil {
		if errors.Is(r.err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return r.err
	}
	if rest := dst[k:]; len(rest) < r.limit/2 {
		// Small remainder: refill the buffer, which may bring the next
		// headers along in the same system call.
		if err := r.fill(len(rest)); err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		r.r += copy(rest, r.buf[r.r:r.w])
		return nil
	}
	if vr, ok := r.src.(VectorReader); ok {
		return r.readVector(vr, dst[k:])
	}
	if _, err := io.ReadFull(r.src, dst[k:]); err != nil {
		r.err = err
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// VectorReader is a source that reads into two buffers with one call, the
// way readv(2) does: the first filled before the second. A Reader whose
// source is one reads the end of each large DATA payload together with
// what follows it on the wire (the next header, usually), so that a stream
// of bulk frames costs one system call per frame, not two.
type VectorReader interface {
	ReadVector(a, b []byte) (int, error)
}

// tailSize bounds what a vector read takes after a payload: the next
// frame's header and a few control frames, never much of the next payload,
// which would then be copied out of buf instead of read into place.
const tailSize = 256

// readVector reads dst from vr, with up to tailSize bytes of what follows
// it into buf. buf holds nothing unread when it is called.
func (r *Reader) readVector(vr VectorReader, dst []byte) error {
	r.r, r.w = 0, 0
	tail := r.buf[:min(len(r.buf), tailSize)]
	for empty := 0; len(dst) > 0; {
		n, err := vr.ReadVector(dst, tail)
		if n > len(dst) {
			r.w = n - len(dst)
			n = len(dst)
		}
		dst = dst[n:]
		if err != nil {
			r.err = err
			if len(dst) == 0 {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if n == 0 {
			if empty++; empty >= 100 {
				r.err = io.ErrNoProgress
				return r.err
			}
		}
	}
	return nil
}

// ReadPreface reads and validates the peer's connection preface.
func (r *Reader) ReadPreface() error {
	if err := r.fill(PrefaceSize); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return SessionError(CodeVersion, "the connection closed before the sluice preface arrived (got %q); is the peer a sluice endpoint?", r.buf[r.r:r.w])
		}
		return err
	}
	copy(r.pre[:], r.buf[r.r:])
	r.r += PrefaceSize
	return ParsePreface(r.pre[:])
}

// Next reads the next frame header. Fixed control payloads are read and
// decoded into Header.Value. For DATA, the caller must consume exactly
// Header.Length bytes with ReadPayload or Discard before calling Next again.
// A violation is returned as *Error; I/O failures are returned as they are
// (io.EOF when the connection ended cleanly between frames).
func (r *Reader) Next() (Header, error) {
	if err := r.fill(HeaderSize); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Header{}, SessionError(CodeProtocol, "the connection closed in the middle of a frame header")
		}
		return Header{}, err
	}
	h, err := ParseHeader(r.buf[r.r : r.r+HeaderSize])
	if err != nil {
		return h, err
	}
	r.r += HeaderSize
	if specs[h.Type].fixedValue {
		if err := r.fill(int(h.Length)); err != nil {
			return h, truncated(h, err)
		}
		v := r.buf[r.r : r.r+int(h.Length)]
		r.r += int(h.Length)
		if h.Length == 8 {
			h.Value = binary.BigEndian.Uint64(v)
		} else {
			h.Value = uint64(binary.BigEndian.Uint32(v))
		}
	}
	return h, nil
}

// ReadPayload reads the payload of the DATA frame h into dst, which must
// be at least h.Length bytes long.
func (r *Reader) ReadPayload(h Header, dst []byte) error {
	if err := r.readFull(dst[:h.Length]); err != nil {
		return truncated(h, err)
	}
	r.bulk = int(h.Length) >= r.limit/2
	return nil
}

// Discard skips the payload of the DATA frame h.
func (r *Reader) Discard(h Header) error {
	n := int(h.Length)
	for n > 0 {
		if r.r == r.w {
			if err := r.fill(1); err != nil {
				return truncated(h, err)
			}
		}
		k := min(n, r.w-r.r)
		r.r += k
		n -= k
	}
	return nil
}

func truncated(h Header, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return SessionError(CodeProtocol, "the connection closed in the middle of a %s frame's %d-byte payload", h.Type, h.Length)
	}
	return err
}
