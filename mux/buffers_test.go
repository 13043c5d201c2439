package mux

import "testing"

// tstBufferMix is the payload sizes of a tunnel carrying mostly small
// messages: in every 250 payloads, 225 of 64 B, 24 of 8 KiB and one full
// 64 KiB frame.
func tstBufferMix() []int {
	sizes := make([]int, 250)
	for i := range sizes {
		switch {
		case i == 0:
			sizes[i] = 64 << 10
		case i <= 24:
			sizes[i] = 8 << 10
		default:
			sizes[i] = 64
		}
	}
	return sizes
}

// BenchmarkBufferMix gets and puts payload buffers in that mix. A pool that
// recycles every class allocates nothing per operation once warm, however
// long it runs; one that recalibrates to the common sizes (bytebufferpool,
// after 42,000 Puts of one size) drops the 64 KiB buffers and allocates
// one for every bulk payload.
func BenchmarkBufferMix(b *testing.B) {
	sizes := tstBufferMix()
	for i := range 1_000_000 {
		putBuf(getBuf(sizes[i%len(sizes)]))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		bb := getBuf(sizes[i%len(sizes)])
		bb.B[0] = 1
		putBuf(bb)
	}
}

// TestBufferMixRecyclesLarge: after a run of the mix long enough for the
// large class's pool to calibrate (over 42,000 Puts of 8 KiB payloads), a
// 64 KiB buffer still comes from the pool rather than being allocated afresh.
func TestBufferMixRecyclesLarge(t *testing.T) {
	if tstRace {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	sizes := tstBufferMix()
	for i := range 1_000_000 {
		putBuf(getBuf(sizes[i%len(sizes)]))
	}
	if a := testing.AllocsPerRun(100, func() { putBuf(getBuf(64 << 10)) }); a > 0 {
		t.Fatalf("a 64 KiB buffer took %.1f allocations after the mix; the large class is not being recycled", a)
	}
}

// TestBufferClasses: a buffer comes back with the length asked for and the
// capacity of its class, and a small request never takes a large buffer.
func TestBufferClasses(t *testing.T) {
	for _, n := range []int{0, 1, 64, smallBuf, smallBuf + 1, 16 << 10, 64 << 10} {
		bb := getBuf(n)
		if len(bb.B) != n {
			t.Errorf("getBuf(%d): length %d", n, len(bb.B))
		}
		if n <= smallBuf && cap(bb.B) > smallBuf {
			t.Errorf("getBuf(%d): capacity %d, beyond the small class", n, cap(bb.B))
		}
		putBuf(bb)
	}
}
