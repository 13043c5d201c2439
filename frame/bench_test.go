package frame_test

import (
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/frame"
)

// BenchmarkReadDataFrame measures Next + ReadPayload per DATA frame through
// the Reader's buffer, from an in-memory source that never runs dry.
func BenchmarkReadDataFrame(b *testing.B) {
	for _, n := range []int{64, 1024, 16 << 10, frame.MaxDataPayload} {
		b.Run(fmt.Sprintf("payload=%d", n), func(b *testing.B) {
			one := frame.AppendData(nil, 1, n)
			one = append(one, make([]byte, n)...)
			r := frame.NewReader(&cyclicReader{data: one}, 64<<10)
			dst := make([]byte, frame.MaxDataPayload)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				h, err := r.Next()
				if err != nil {
					b.Fatal(err)
				}
				if err := r.ReadPayload(h, dst[:h.Length]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendHeader measures encoding one header into a reused buffer.
func BenchmarkAppendHeader(b *testing.B) {
	buf := make([]byte, 0, frame.HeaderSize)
	b.ReportAllocs()
	var id uint32
	for b.Loop() {
		id++
		buf = frame.AppendHeader(buf[:0], frame.TypeData, id&(1<<31-1)|1, 1024)
	}
	if len(buf) != frame.HeaderSize {
		b.Fatalf("AppendHeader wrote %d bytes; want %d", len(buf), frame.HeaderSize)
	}
}
