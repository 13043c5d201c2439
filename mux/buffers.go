package mux

import (
	"github.com/sluicehq/sluice/frame"
	"github.com/valyala/bytebufferpool"
)

// Payload buffers come from two pools by size class, so that a 64-byte
// request never takes (and pins) a 64 KiB buffer, and a bulk chunk never
// finds only small buffers to grow.
const smallBuf = 2 << 10

var (
	smallPool bytebufferpool.Pool
	largePool bytebufferpool.Pool
)

// getBuf returns a pooled buffer of length n.
func getBuf(n int) *buffer {
	pool, class := &largePool, frame.MaxDataPayload
	if n <= smallBuf {
		pool, class = &smallPool, smallBuf
	}
	bb := pool.Get()
	if cap(bb.B) < n {
		bb.B = make([]byte, n, class)
	}
	bb.B = bb.B[:n]
	return bb
}

// putBuf returns a buffer to its pool.
func putBuf(bb *buffer) {
	if cap(bb.B) <= smallBuf {
		smallPool.Put(bb)
	} else {
		largePool.Put(bb)
	}
}

// buffer is a pooled payload buffer.
type buffer = bytebufferpool.ByteBuffer
