package inspect

import "sync"

// ring holds the latest entries within a count and a byte budget: the
// oldest go first, so memory stays flat however much traffic passes.
// Entries sit in a circular buffer in ID order, and IDs are consecutive, so
// adding, evicting and finding an entry by ID cost O(1).
// Subscribers (the live list's event streams) hear of each entry added.
type ring struct {
	mu       sync.Mutex
	buf      []*Entry // circular; buf[head] is the oldest of n entries
	head, n  int
	bytes    int64
	maxBytes int64
	nextID   uint64
	subs     map[chan *Entry]struct{}
}

func newRing(maxCount int, maxBytes int64) *ring {
	return &ring{buf: make([]*Entry, maxCount), maxBytes: maxBytes, subs: map[chan *Entry]struct{}{}}
}

func (r *ring) at(i int) *Entry { return r.buf[(r.head+i)%len(r.buf)] }

func (r *ring) evictOldest() {
	old := r.buf[r.head]
	r.bytes -= old.size
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

// add numbers e, stores it, evicts what no longer fits and tells the
// subscribers. A subscriber too slow to take the entry is dropped (its
// channel closed): its client reconnects and reloads the list.
func (r *ring) add(e *Entry) {
	e.size = e.footprint()
	r.mu.Lock()
	r.nextID++
	e.ID = r.nextID
	if r.n == len(r.buf) {
		r.evictOldest()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = e
	r.n++
	r.bytes += e.size
	for r.bytes > r.maxBytes && r.n > 1 {
		r.evictOldest()
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
	if r.n == 0 {
		return nil, false
	}
	first := r.at(0).ID
	if id < first || id >= first+uint64(r.n) {
		return nil, false
	}
	return r.at(int(id - first)), true
}

// list returns the entries that pass keep, newest first, at most limit.
func (r *ring) list(keep func(*Entry) bool, limit int) []*Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Entry
	for i := r.n - 1; i >= 0 && len(out) < limit; i-- {
		if e := r.at(i); keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// usage reports how many entries and bytes the ring holds.
func (r *ring) usage() (int, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n, r.bytes
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
