package mux

import (
	"sync"

	"github.com/sluicehq/sluice/frame"
)

// Payload buffers come from one pool per size class, so that a 64-byte
// request never takes (and pins) a 64 KiB buffer, and a bulk chunk never
// finds only small buffers to grow. The pools keep every buffer of their
// class: a pool that tuned itself to the common sizes (bytebufferpool
// does, after 42,000 Puts of one size) would drop the 64 KiB buffers of a
// tunnel that mostly carries small messages and allocate one for every
// bulk payload (BenchmarkBufferMix).
const smallBuf = 2 << 10

// buffer is a pooled payload buffer.
type buffer struct{ B []byte }

var (
	smallPool = sync.Pool{New: func() any { return &buffer{B: make([]byte, 0, smallBuf)} }}
	largePool = sync.Pool{New: func() any { return &buffer{B: make([]byte, 0, frame.MaxDataPayload)} }}
)

// getBuf returns a pooled buffer of length n (n ≤ frame.MaxDataPayload).
func getBuf(n int) *buffer {
	pool := &largePool
	if n <= smallBuf {
		pool = &smallPool
	}
	bb := pool.Get().(*buffer)
	bb.B = bb.B[:n]
	return bb
}

// putBuf returns a buffer to the pool of its class.
func putBuf(bb *buffer) {
	if cap(bb.B) <= smallBuf {
		smallPool.Put(bb)
	} else {
		largePool.Put(bb)
	}
}
