package server

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/control"
)

// endpoint is what a public hostname or port routes to: one tunnel, or
// several of one owner when they pool it.
type endpoint struct {
	kind   control.Kind
	key    string
	host   string // HTTP
	port   int    // TCP and UDP
	name   string
	url    string
	ln     net.Listener // TCP: the public listener, which outlives members
	udp    *udpIngress  // UDP: the public socket and its flows, which outlive members
	since  time.Time
	pooled bool

	mu      sync.Mutex
	members []*tunnel
	rr      atomic.Uint32
}

// pick returns the next member, round robin, or nil when none is left.
func (e *endpoint) pick() *tunnel {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.members) == 0 {
		return nil
	}
	return e.members[int(e.rr.Add(1))%len(e.members)]
}

func (e *endpoint) isPooled() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pooled
}

func (e *endpoint) size() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.members)
}
