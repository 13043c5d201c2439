package frame_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/sluicehq/sluice/frame"
)

// vectorSource is a frame.VectorReader over a byte stream, as readv(2)
// over a socket: each call returns at most chunk bytes (0: no limit),
// filling a before b. It counts its calls, the system calls a socket
// would cost.
type vectorSource struct {
	r     *bytes.Reader
	chunk int
	calls int
}

func (v *vectorSource) limit(n int) int {
	if v.chunk > 0 {
		return min(n, v.chunk)
	}
	return n
}

func (v *vectorSource) Read(p []byte) (int, error) {
	v.calls++
	return v.r.Read(p[:v.limit(len(p))])
}

func (v *vectorSource) ReadVector(a, b []byte) (int, error) {
	v.calls++
	want := v.limit(len(a) + len(b))
	n, err := v.r.Read(a[:min(want, len(a))])
	if n == len(a) && want > len(a) && v.r.Len() > 0 {
		m, _ := v.r.Read(b[:want-len(a)])
		n += m
	}
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}

func TestVectorReaderRoundTrip(t *testing.T) {
	stream, want := buildStream(1000, 0, frame.MaxDataPayload, 1, frame.MaxDataPayload, 40000)
	for _, chunk := range []int{0, 1, 7, 4096, frame.MaxDataPayload + 5} {
		for _, bufSize := range []int{16, 4096, 32 << 10} {
			t.Run(fmt.Sprintf("chunk=%d/buf=%d", chunk, bufSize), func(t *testing.T) {
				src := &vectorSource{r: bytes.NewReader(stream), chunk: chunk}
				got, err := drain(frame.NewReader(src, bufSize), false)
				if err != io.EOF {
					t.Fatalf("stream ended with %v; want io.EOF at the frame boundary", err)
				}
				if len(got) != len(want) {
					t.Fatalf("decoded %d frames; want %d", len(got), len(want))
				}
				for i := range want {
					if got[i].hdr != want[i].hdr {
						t.Errorf("frame %d: header %+v; want %+v", i, got[i].hdr, want[i].hdr)
					}
					if !bytes.Equal(got[i].payload, want[i].payload) {
						t.Errorf("frame %d: payload of %d bytes differs from the %d sent", i, len(got[i].payload), len(want[i].payload))
					}
				}
			})
		}
	}
}

// A run of bulk DATA frames that is all there to read costs one read per
// frame: the end of each payload comes with the next header.
func TestVectorReaderOneReadPerBulkFrame(t *testing.T) {
	const frames = 16
	b := frame.AppendPreface(nil)
	for range frames {
		b = frame.AppendData(b, 1, frame.MaxDataPayload)
		b = append(b, make([]byte, frame.MaxDataPayload)...)
	}
	src := &vectorSource{r: bytes.NewReader(b)}
	r := frame.NewReader(src, 32<<10)
	got, err := drain(r, false)
	if err != io.EOF || len(got) != frames {
		t.Fatalf("read %d frames, ending with %v; want %d and io.EOF", len(got), err, frames)
	}
	// The preface and the first header take a read, each payload one more,
	// and the end of the stream one.
	if max := frames + 2; src.calls > max {
		t.Fatalf("%d reads for %d bulk frames; want at most %d", src.calls, frames, max)
	}
}
