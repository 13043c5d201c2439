package console

import (
	"reflect"
	"sort"
	"sync"
	"time"
)

// histLen is how many samples a sparkline shows: a minute at the default
// interval.
const histLen = 60

// sampler takes the edges' snapshots, turns their counters into rates and
// keeps a short history of each tunnel's traffic. Every page and event
// stream reads its latest sample; nothing recomputes per viewer.
type sampler struct {
	edges    []Backend
	interval time.Duration

	mu      sync.Mutex
	cur     *sample
	prev    map[string]counters // per tunnel key, at the last sample
	hist    map[string]*series  // per tunnel key
	total   series              // the whole fleet: bytes/s in and out
	reqs    series              // the whole fleet: requests/s (in the "in" line) and 5xx/s
	updated chan struct{}       // closed when cur is replaced
}

type counters struct {
	in, out int64
	reqs    [5]int64
}

// series is a ring of the latest rates, oldest first when read.
type series struct {
	in, out []float64
}

func (s *series) push(in, out float64) {
	s.in = append(s.in, in)
	s.out = append(s.out, out)
	if len(s.in) > histLen {
		s.in = s.in[1:]
		s.out = s.out[1:]
	}
}

// rate is one tunnel's traffic over the last interval.
type rate struct {
	in, out   float64 // bytes/s
	reqs, err float64 // requests/s, 5xx/s
}

// sample is the edges' state at one moment, with rates.
type sample struct {
	at     time.Time
	snaps  []Snapshot
	rates  map[string]rate
	hist   map[string]series // copies, safe to read after the lock
	total  series
	reqs   series
	totals rate
}

func newSampler(edges []Backend, interval time.Duration) *sampler {
	s := &sampler{edges: edges, interval: interval, prev: map[string]counters{}, hist: map[string]*series{}, updated: make(chan struct{})}
	s.sample(time.Now())
	return s
}

func tunnelKey(edge, id string) string { return edge + "/" + id }

// sample takes a snapshot of every edge and derives rates from the last
// one.
func (s *sampler) sample(now time.Time) {
	snaps := make([]Snapshot, len(s.edges))
	for i, e := range s.edges {
		snaps[i] = e.Snapshot()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A sample taken because an edge changed, soon after the last, only
	// refreshes the lists: rates over a few milliseconds would be noise,
	// so they carry over and the next full sample covers the whole span.
	var dt float64
	full := true
	if s.cur != nil {
		dt = now.Sub(s.cur.at).Seconds()
		if now.Sub(s.cur.at) < s.interval/2 {
			full = false
			now = s.cur.at
		}
	}
	smp := &sample{at: now, snaps: snaps, rates: map[string]rate{}, hist: map[string]series{}}
	seen := map[string]bool{}
	for _, sn := range snaps {
		for _, t := range sn.Tunnels {
			k := tunnelKey(sn.Edge.ID, t.ID)
			seen[k] = true
			c := counters{in: t.BytesIn, out: t.BytesOut, reqs: t.Requests}
			var r rate
			p, ok := s.prev[k]
			if !full {
				r = s.cur.rates[k]
				if !ok {
					s.prev[k] = c
				}
			} else if ok && dt > 0 {
				r.in = float64(max(0, c.in-p.in)) / dt
				r.out = float64(max(0, c.out-p.out)) / dt
				var n int64
				for i := range c.reqs {
					n += max(0, c.reqs[i]-p.reqs[i])
				}
				r.reqs = float64(n) / dt
				r.err = float64(max(0, c.reqs[4]-p.reqs[4])) / dt
			}
			if full {
				s.prev[k] = c
			}
			h := s.hist[k]
			if h == nil {
				h = &series{}
				s.hist[k] = h
			}
			if full && dt > 0 {
				h.push(r.in, r.out)
			}
			smp.rates[k] = r
			smp.hist[k] = series{in: append([]float64(nil), h.in...), out: append([]float64(nil), h.out...)}
			smp.totals.in += r.in
			smp.totals.out += r.out
			smp.totals.reqs += r.reqs
			smp.totals.err += r.err
		}
	}
	for k := range s.prev {
		if !seen[k] {
			delete(s.prev, k)
			delete(s.hist, k)
		}
	}
	if full && dt > 0 {
		s.total.push(smp.totals.in, smp.totals.out)
		s.reqs.push(smp.totals.reqs, smp.totals.err)
	}
	smp.total = series{in: append([]float64(nil), s.total.in...), out: append([]float64(nil), s.total.out...)}
	smp.reqs = series{in: append([]float64(nil), s.reqs.in...), out: append([]float64(nil), s.reqs.out...)}
	s.cur = smp
	close(s.updated)
	s.updated = make(chan struct{})
}

// latest returns the latest sample and a channel closed when a newer one
// is taken.
func (s *sampler) latest() (*sample, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.updated
}

// waitChange blocks until an edge changes, stop closes or tick fires.
func (s *sampler) waitChange(stop <-chan struct{}, tick <-chan time.Time) (stopped bool) {
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(stop)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(tick)},
	}
	for _, e := range s.edges {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(e.Changed())})
	}
	i, _, _ := reflect.Select(cases)
	return i == 0
}

// sortSnapshots orders a fleet's edges by ID, so pages do not shuffle.
func sortSnapshots(snaps []Snapshot) {
	sort.SliceStable(snaps, func(i, j int) bool { return snaps[i].Edge.ID < snaps[j].Edge.ID })
}
