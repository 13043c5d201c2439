package frame

import (
	"bytes"
	"io"
	"testing"
)

// An idle connection's reader holds a small buffer; one that brings bursts
// of small frames grows it to the size asked for, so a burst still costs
// few system calls.
func TestReaderBufferGrowsOnlyUnderBursts(t *testing.T) {
	const limit = 32 << 10
	quiet := AppendPing(AppendPreface(nil), false, 1)
	r := NewReader(bytes.NewReader(quiet), limit)
	if err := r.ReadPreface(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if len(r.buf) != initialBufSize {
		t.Fatalf("after one PING the buffer is %d bytes, want the initial %d", len(r.buf), initialBufSize)
	}

	burst := AppendPreface(nil)
	for i := 0; i < 4000; i++ {
		burst = AppendData(burst, 1, 4)
		burst = append(burst, "ping"...)
	}
	r = NewReader(bytes.NewReader(burst), limit)
	if err := r.ReadPreface(); err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 4)
	for i := 0; i < 4000; i++ {
		h, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if err := r.ReadPayload(h, dst); err != nil || string(dst) != "ping" {
			t.Fatalf("frame %d payload %q, %v", i, dst, err)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the burst Next = %v, want io.EOF", err)
	}
	if len(r.buf) != limit {
		t.Fatalf("after a %d-byte burst the buffer is %d bytes, want it grown to %d", len(burst), len(r.buf), limit)
	}
}
