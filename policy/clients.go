package policy

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// clientKey is the key of a client in per-address tables: the address for
// IPv4, its /64 for IPv6, since one host commonly holds a whole /64.
func clientKey(a netip.Addr) netip.Addr {
	if a.Is4() {
		return a
	}
	p, _ := a.Prefix(64)
	return p.Addr()
}

// clientTable is per-client state with a bound on its size. When it is
// full, entries whose state is spent (a full token bucket, a failure count
// long past) are dropped first, since forgetting them changes nothing;
// then arbitrary ones, which lets those clients start afresh.
type clientTable[V any] struct {
	mu    sync.Mutex
	m     map[netip.Addr]*V
	max   int
	spent func(v *V, now time.Time) bool
	// size is len(m), kept beside it so that lookups and removals in an
	// empty table (no client has failed: the usual case, on every request)
	// take no lock.
	size atomic.Int64
}

func newClientTable[V any](max int, spent func(*V, time.Time) bool) *clientTable[V] {
	return &clientTable[V]{m: make(map[netip.Addr]*V), max: max, spent: spent}
}

// get returns the client's entry, made by mk when it has none.
func (t *clientTable[V]) get(a netip.Addr, now time.Time, mk func() *V) *V {
	k := clientKey(a)
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.m[k]; ok {
		return v
	}
	if len(t.m) >= t.max {
		t.evict(now)
	}
	v := mk()
	t.m[k] = v
	t.size.Store(int64(len(t.m)))
	return v
}

// lookup returns the client's entry, or nil.
func (t *clientTable[V]) lookup(a netip.Addr) *V {
	if t.size.Load() == 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[clientKey(a)]
}

func (t *clientTable[V]) remove(a netip.Addr) {
	if t.size.Load() == 0 {
		return
	}
	t.mu.Lock()
	delete(t.m, clientKey(a))
	t.size.Store(int64(len(t.m)))
	t.mu.Unlock()
}

// evict frees at least an eighth of the table, so its cost is spread over
// the inserts that filled it.
func (t *clientTable[V]) evict(now time.Time) {
	target := t.max - t.max/8 - 1
	for k, v := range t.m {
		if t.spent(v, now) {
			delete(t.m, k)
		}
	}
	for k := range t.m {
		if len(t.m) <= target {
			break
		}
		delete(t.m, k)
	}
	t.size.Store(int64(len(t.m)))
}

func (t *clientTable[V]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
