package inspect

import (
	"sort"
	"sync"
)

// ring holds the latest entries within a count and a byte budget: the
// oldest go first, so memory stays flat however much traffic passes.
// Subscribers (the live list's event streams) hear of each entry added.
type ring struct {
	mu       sync.Mutex
	entries  []*Entry // oldest first; IDs ascending
	bytes    int64
	maxCount int
	maxBytes int64
	nextID   uint64
	subs     map[chan *Entry]struct{}
}

func newRing(maxCount int, maxBytes int64) *ring {
	return &ring{maxCount: maxCount, maxBytes: maxBytes, subs: map[chan *Entry]struct{}{}}
}

// add numbers e, stores it, evicts what no longer fits and tells the
// subscribers. A subscriber too slow to take the entry is dropped (its
// channel closed): its client reconnects and reloads the list.
func (r *ring) add(e *Entry) {
	r.mu.Lock()
	r.nextID++
	e.ID = r.nextID
	r.entries = append(r.entries, e)
	r.bytes += e.footprint()
	drop := 0
	for len(r.entries)-drop > r.maxCount || (r.bytes > r.maxBytes && len(r.entries)-drop > 1) {
		r.bytes -= r.entries[drop].footprint()
		r.entries[drop] = nil
		drop++
	}
	if drop > 0 {
		n := copy(r.entries, r.entries[drop:])
		clear(r.entries[n:])
		r.entries = r.entries[:n]
	}
	for ch := range r.subs {
		select {
		case ch <- e:
		default:
			delete(r.subs, ch)
			close(ch)
		}
	}
	r.mu.Unlock()
}

// get returns the entry with id, if still held.
func (r *ring) get(id uint64) (*Entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := sort.Search(len(r.entries), func(i int) bool { return r.entries[i].ID >= id })
	if i < len(r.entries) && r.entries[i].ID == id {
		return r.entries[i], true
	}
	return nil, false
}

// list returns the entries that pass keep, newest first, at most limit.
func (r *ring) list(keep func(*Entry) bool, limit int) []*Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Entry
	for i := len(r.entries) - 1; i >= 0 && len(out) < limit; i-- {
		if keep(r.entries[i]) {
			out = append(out, r.entries[i])
		}
	}
	return out
}

// usage reports how many entries and bytes the ring holds.
func (r *ring) usage() (int, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries), r.bytes
}

func (r *ring) subscribe() chan *Entry {
	ch := make(chan *Entry, 64)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return ch
}

func (r *ring) unsubscribe(ch chan *Entry) {
	r.mu.Lock()
	if _, ok := r.subs[ch]; ok {
		delete(r.subs, ch)
		close(ch)
	}
	r.mu.Unlock()
}
