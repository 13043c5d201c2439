package mux

import (
	"github.com/valyala/bytebufferpool"

	"github.com/sluicehq/sluice/frame"
)

// Payload buffers come from one bytebufferpool.Pool per size class, so that
// a 64-byte request never takes (and pins) a 64 KiB buffer, and a bulk chunk
// never finds only small buffers to grow.
//
// A bytebufferpool.Pool calibrates itself after ~42,000 Puts: it keeps only
// buffers up to the size that 95% of Puts had, judged by their length. Fed
// payloads of mixed lengths, it would drop every 64 KiB buffer of a tunnel
// that mostly carries small messages and allocate one for each bulk payload
// (BenchmarkBufferMix). So every buffer goes back at the full length of its
// class: each pool sees one length only, calibrates to exactly its class,
// and keeps every buffer.
const smallBuf = 2 << 10

// buffer is a pooled payload buffer.
type buffer = bytebufferpool.ByteBuffer

var (
	smallPool bytebufferpool.Pool
	largePool bytebufferpool.Pool
)

// getBuf returns a pooled buffer of length n (n ≤ frame.MaxDataPayload).
func getBuf(n int) *buffer {
	pool, class := &largePool, frame.MaxDataPayload
	if n <= smallBuf {
		pool, class = &smallPool, smallBuf
	}
	bb := pool.Get()
	if cap(bb.B) < class {
		bb.B = make([]byte, n, class)
	}
	bb.B = bb.B[:n]
	return bb
}

// putBuf returns a buffer to the pool of its class, at the class's length
// (see above). The pool resets the length before the next Get.
func putBuf(bb *buffer) {
	bb.B = bb.B[:cap(bb.B)]
	if cap(bb.B) <= smallBuf {
		smallPool.Put(bb)
	} else {
		largePool.Put(bb)
	}
}
