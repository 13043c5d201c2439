package frame_test

import (
	"testing"

	"github.com/sluicehq/sluice/frame"
)

// The codec's promise is no allocation per frame on the steady path. These
// counts are deterministic, so they are tests rather than benchmarks.

func TestNoAllocsReadData(t *testing.T) {
	for _, n := range []int{0, 1, 1024, frame.MaxDataPayload} {
		one := frame.AppendData(nil, 1, n)
		one = append(one, make([]byte, n)...)
		r := frame.NewReader(&cyclicReader{data: one}, 64<<10)
		dst := make([]byte, frame.MaxDataPayload)
		var failure error
		allocs := testing.AllocsPerRun(200, func() {
			h, err := r.Next()
			if err == nil {
				err = r.ReadPayload(h, dst[:h.Length])
			}
			if err != nil && failure == nil {
				failure = err
			}
		})
		if failure != nil {
			t.Fatalf("payload %d: reading a DATA frame failed: %v", n, failure)
		}
		if allocs != 0 {
			t.Errorf("payload %d: Next + ReadPayload allocate %.1f times per frame; want 0", n, allocs)
		}
	}
}

func TestNoAllocsDiscardData(t *testing.T) {
	one := frame.AppendData(nil, 1, 5000)
	one = append(one, make([]byte, 5000)...)
	r := frame.NewReader(&cyclicReader{data: one}, 4096)
	var failure error
	allocs := testing.AllocsPerRun(200, func() {
		h, err := r.Next()
		if err == nil {
			err = r.Discard(h)
		}
		if err != nil && failure == nil {
			failure = err
		}
	})
	if failure != nil {
		t.Fatalf("discarding a DATA frame failed: %v", failure)
	}
	if allocs != 0 {
		t.Errorf("Next + Discard allocate %.1f times per frame; want 0", allocs)
	}
}

func TestNoAllocsReadControl(t *testing.T) {
	frames := map[string][]byte{
		"PING":          frame.AppendPing(nil, false, 42),
		"WINDOW_UPDATE": frame.AppendWindowUpdate(nil, 3, 1<<20),
		"RESET":         frame.AppendReset(nil, 3, frame.CodeCancel),
		"OPEN":          frame.AppendOpen(nil, 3),
	}
	for name, one := range frames {
		r := frame.NewReader(&cyclicReader{data: one}, 4096)
		var failure error
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := r.Next(); err != nil && failure == nil {
				failure = err
			}
		})
		if failure != nil {
			t.Fatalf("%s: Next failed: %v", name, failure)
		}
		if allocs != 0 {
			t.Errorf("%s: Next allocates %.1f times per frame; want 0", name, allocs)
		}
	}
}

func TestNoAllocsAppend(t *testing.T) {
	buf := make([]byte, 0, 64)
	encoders := map[string]func([]byte) []byte{
		"Header":       func(b []byte) []byte { return frame.AppendHeader(b, frame.TypeData, 1, 100) },
		"Data":         func(b []byte) []byte { return frame.AppendData(b, 1, 100) },
		"Open":         func(b []byte) []byte { return frame.AppendOpen(b, 1) },
		"Close":        func(b []byte) []byte { return frame.AppendClose(b, 1) },
		"Reset":        func(b []byte) []byte { return frame.AppendReset(b, 1, frame.CodeCancel) },
		"WindowUpdate": func(b []byte) []byte { return frame.AppendWindowUpdate(b, 1, 1<<16) },
		"Ping":         func(b []byte) []byte { return frame.AppendPing(b, true, 7) },
		"GoAway":       func(b []byte) []byte { return frame.AppendGoAway(b, frame.CodeNoError) },
		"Preface":      frame.AppendPreface,
	}
	for name, enc := range encoders {
		allocs := testing.AllocsPerRun(200, func() {
			buf = enc(buf[:0])
		})
		if len(buf) == 0 {
			t.Fatalf("Append%s wrote nothing", name)
		}
		if allocs != 0 {
			t.Errorf("Append%s into a buffer with room allocates %.1f times; want 0", name, allocs)
		}
	}
}
