package frame_test

import (
	"errors"
	"io"
	"testing"

	"github.com/sluicehq/sluice/frame"
)

// where says which stream IDs a frame type may carry, per docs/PROTOCOL.md.
type where uint8

const (
	streamOnly  where = iota // non-zero stream ID
	sessionOnly              // stream ID 0
	either                   // 0 or non-zero
)

// wireRule is the test's own statement of the protocol's per-type rules. It
// is written out independently of the package's spec table, so a mistake in
// one is caught by the other.
type wireRule struct {
	minLen, maxLen uint32
	where          where
	fixed          bool // payload is a fixed-size value decoded into Header.Value
}

var wireRules = map[frame.Type]wireRule{
	frame.TypeData:         {0, 65536, streamOnly, false},
	frame.TypeOpen:         {0, 0, streamOnly, false},
	frame.TypeClose:        {0, 0, streamOnly, false},
	frame.TypeReset:        {4, 4, streamOnly, true},
	frame.TypeWindowUpdate: {4, 4, either, true},
	frame.TypePing:         {8, 8, sessionOnly, true},
	frame.TypePong:         {8, 8, sessionOnly, true},
	frame.TypeGoAway:       {4, 4, sessionOnly, true},
	frame.TypeSettings:     {8, 8, sessionOnly, true},
}

var allTypes = []frame.Type{
	frame.TypeData, frame.TypeOpen, frame.TypeClose, frame.TypeReset,
	frame.TypeWindowUpdate, frame.TypePing, frame.TypePong, frame.TypeGoAway,
	frame.TypeSettings,
}

// rawHeader lays out a header byte by byte as the protocol document draws
// it: length (4, big-endian), type, flags, two reserved bytes, stream ID
// (4, big-endian). It deliberately does not use the package's encoder.
func rawHeader(length uint32, typ, flags, res0, res1 byte, stream uint32) []byte {
	return []byte{
		byte(length >> 24), byte(length >> 16), byte(length >> 8), byte(length),
		typ, flags, res0, res1,
		byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream),
	}
}

// beBytes returns v as n big-endian bytes (n is 4 or 8).
func beBytes(v uint64, n int) []byte {
	b := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

// ruleAllows reports whether the protocol accepts a header with this type,
// length and stream ID (flags and reserved bytes zero).
func ruleAllows(t frame.Type, length, stream uint32) bool {
	r, ok := wireRules[t]
	if !ok || stream>>31 != 0 || length < r.minLen || length > r.maxLen {
		return false
	}
	switch r.where {
	case streamOnly:
		return stream != 0
	case sessionOnly:
		return stream == 0
	}
	return true
}

// asFrameError fails the test unless err is a *frame.Error with the given
// code, and returns it.
func asFrameError(t testing.TB, err error, code frame.Code) *frame.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error; want a *frame.Error with code %s", code)
	}
	var fe *frame.Error
	if !errors.As(err, &fe) {
		t.Fatalf("got %T (%v); want a *frame.Error with code %s", err, err, code)
	}
	if fe.Code != code {
		t.Fatalf("got code %s (%v); want code %s", fe.Code, err, code)
	}
	if fe.Reason == "" {
		t.Fatalf("error %v has an empty Reason; every error must say what failed", err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("error %v wraps io.ErrUnexpectedEOF; truncation must surface as a protocol error only", err)
	}
	return fe
}

// cyclicReader serves data over and over without allocating, so that a
// Reader on top of it sees an endless stream of identical frames.
type cyclicReader struct {
	data []byte
	off  int
}

func (c *cyclicReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.data[c.off:])
		n += k
		c.off = (c.off + k) % len(c.data)
	}
	return n, nil
}
