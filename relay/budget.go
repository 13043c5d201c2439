package relay

import (
	"sync"
	"sync/atomic"
)

// The read buffers of busy connections are lent from a budget. A direction
// holds its buffer while it writes the chunk it read, and a stream's Write
// waits for the peer's credit, so under load every busy connection holds
// one: 2,000 connections each blocked on a 256 KiB chunk pin 500 MB, which
// the runtime then keeps long after the load. BufferSize buffers go to the
// first MaxLargeBuffers directions that want one (one to four connections
// per core saturate a link, so they lose nothing); every direction beyond
// reads SmallBufferSize at a time, so the whole stays near 32 MiB plus
// 16 KiB per connection, at the cost of more system calls per byte on
// connections that share the link with hundreds of others anyway.
const (
	// MaxLargeBuffers caps the BufferSize buffers lent at once (32 MiB).
	MaxLargeBuffers = 128
	// SmallBufferSize is the size of a buffer lent beyond MaxLargeBuffers.
	SmallBufferSize = 16 << 10
)

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, SmallBufferSize); return &b }}
	largeOut  atomic.Int64
)

// getBuf lends a read buffer: a large one while the budget lasts.
func getBuf() *[]byte {
	if largeOut.Add(1) <= MaxLargeBuffers {
		return bufPool.Get().(*[]byte)
	}
	largeOut.Add(-1)
	return smallPool.Get().(*[]byte)
}

// putBuf returns a buffer from getBuf.
func putBuf(bp *[]byte) {
	if cap(*bp) == BufferSize {
		largeOut.Add(-1)
		bufPool.Put(bp)
		return
	}
	smallPool.Put(bp)
}
