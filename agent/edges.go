package agent

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/sluicehq/sluice/control"
)

// DefaultSessions is how many edges an agent keeps sessions to when it
// knows several. Two, against cloudflared's four connections to two
// locations: sluice's edges are peers of one fleet that forward to each
// other, so any edge reaches the agent through either session; a second
// session is what turns losing an edge into no outage (the other carries
// every tunnel while a replacement opens), and each more one costs every
// edge it lands on memory per agent and a store write per tunnel for no
// further reach.
const DefaultSessions = 2

// goingAwayAvoid is how long an edge that said it is going away (GOAWAY)
// is not picked for a new session while another edge is free: about as
// long as an edge takes to drain and restart.
const goingAwayAvoid = 5 * time.Second

// edgeBook is what the agent knows of the edges it may connect to: the
// addresses it was given, then those the edges told it (Welcome.Fleet and
// Fleet messages), which it keeps when the edge that told it goes.
type edgeBook struct {
	mu      sync.Mutex
	given   []string          // configured, in order
	learned []string          // told by the fleet, in its order
	ids     map[string]string // address → edge ID, once known
	inUse   map[int]string    // slot → address of its session
	avoid   map[string]time.Time
	changed chan struct{} // closed and replaced when the book changes
}

func newEdgeBook(given []string) *edgeBook {
	return &edgeBook{given: given, ids: map[string]string{}, inUse: map[int]string{},
		avoid: map[string]time.Time{}, changed: make(chan struct{})}
}

// identity is how two addresses of one edge are told apart from two edges.
func (b *edgeBook) identity(addr string) string {
	if id := b.ids[addr]; id != "" {
		return "id:" + id
	}
	return "addr:" + addr
}

func (b *edgeBook) notify() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// known lists every address, given ones first, without repeats.
func (b *edgeBook) known() []string {
	out := slices.Clone(b.given)
	for _, a := range b.learned {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// size is how many distinct edges the book knows.
func (b *edgeBook) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.distinct(b.known()))
}

// pick chooses an address for slot's next session: an edge no other slot
// holds a session to and that was not avoided lately, in the book's order
// starting at the slot's own offset, so that slots spread. When every free
// edge is avoided, the primary slot (0) gets the one whose avoidance ends
// first and how long to wait for it; another slot gets "" and how long to
// wait before asking again.
func (b *edgeBook) pick(slot int) (addr string, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	busy := map[string]bool{}
	for s, a := range b.inUse {
		if s != slot {
			busy[b.identity(a)] = true
		}
	}
	all := b.known()
	if slot > 0 && len(b.distinct(all)) <= slot {
		// A slot past the first runs only while the book has an edge for
		// it: two sessions of one agent on one edge would replace each
		// other.
		delete(b.inUse, slot)
		return "", time.Second
	}
	now := time.Now()
	var soonest string
	var soonestAt time.Time
	for i := range all {
		a := all[(i+slot)%len(all)]
		id := b.identity(a)
		if busy[id] {
			continue
		}
		until := b.avoid[id]
		if !now.Before(until) {
			b.inUse[slot] = a // reserved while the slot connects
			return a, 0
		}
		if soonest == "" || until.Before(soonestAt) {
			soonest, soonestAt = a, until
		}
	}
	if soonest == "" {
		delete(b.inUse, slot)
		return "", time.Second
	}
	if slot != 0 {
		delete(b.inUse, slot)
		return "", soonestAt.Sub(now)
	}
	b.inUse[slot] = soonest
	return soonest, soonestAt.Sub(now)
}

// distinct is the set of edges behind addrs.
func (b *edgeBook) distinct(addrs []string) map[string]bool {
	seen := map[string]bool{}
	for _, a := range addrs {
		seen[b.identity(a)] = true
	}
	return seen
}

// use records that slot holds a session to addr, which is the edge id.
func (b *edgeBook) use(slot int, addr, id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if id != "" {
		b.ids[addr] = id
	}
	b.inUse[slot] = addr
	delete(b.avoid, b.identity(addr))
}

// free records that slot's session ended, and avoids its edge for d.
func (b *edgeBook) free(slot int, addr string, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inUse[slot] == addr {
		delete(b.inUse, slot)
	}
	if d > 0 {
		b.avoid[b.identity(addr)] = time.Now().Add(d)
	}
	b.notify()
}

// moveOff avoids addr, which slot holds a session to, for d and frees the
// slot for another edge, when the book has another edge the slot can take
// now; otherwise it changes nothing and reports false.
func (b *edgeBook) moveOff(slot int, addr string, d time.Duration) bool {
	b.mu.Lock()
	id := b.identity(addr)
	prev, had := b.avoid[id]
	b.avoid[id] = time.Now().Add(d)
	b.mu.Unlock()
	if next, wait := b.pick(slot); next != "" && wait == 0 {
		b.free(slot, addr, d)
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inUse[slot] = addr
	if had {
		b.avoid[id] = prev
	} else {
		delete(b.avoid, id)
	}
	return false
}

// learn takes the fleet's list of edges, replacing the one learned before.
func (b *edgeBook) learn(edges []control.Edge) {
	if len(edges) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	learned := make([]string, 0, len(edges))
	for _, e := range edges {
		if e.Addr == "" {
			continue
		}
		learned = append(learned, e.Addr)
		if e.ID != "" {
			b.ids[e.Addr] = e.ID
		}
	}
	if slices.Equal(learned, b.learned) {
		return
	}
	b.learned = learned
	b.notify()
}

// wait returns after d, when the book changes, or false when ctx ends.
func (b *edgeBook) wait(ctx context.Context, d time.Duration) bool {
	b.mu.Lock()
	ch := b.changed
	b.mu.Unlock()
	t := time.NewTimer(max(d, time.Millisecond))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ch:
	case <-ctx.Done():
		return false
	}
	return true
}

// given reports whether addr was configured rather than learned.
func (b *edgeBook) isGiven(addr string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Contains(b.given, addr)
}
