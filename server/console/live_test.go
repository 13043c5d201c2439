package console

import (
	"math"
	"testing"
	"time"
)

// counting is an edge whose one tunnel's counters the test sets.
type counting struct {
	edge
}

func (c *counting) set(in, out int64, reqs [5]int64) {
	c.mu.Lock()
	c.snap.Tunnels = []Tunnel{{ID: "7", URL: "http://a.example", BytesIn: in, BytesOut: out, Requests: reqs}}
	c.mu.Unlock()
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestSamplerRates: rates are the counters' growth over the time between
// full samples; a sample soon after another (an edge changed) refreshes
// the lists but neither computes a rate over the short span nor adds a
// point to the sparkline.
func TestSamplerRates(t *testing.T) {
	e := &counting{}
	e.snap.Edge.ID = "e"
	e.set(0, 0, [5]int64{})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &sampler{edges: []Backend{e}, interval: time.Second, prev: map[string]counters{}, hist: map[string]*series{}, updated: make(chan struct{})}
	s.sample(t0)

	e.set(1000, 4000, [5]int64{0, 8, 0, 1, 1})
	s.sample(t0.Add(2 * time.Second))
	smp, _ := s.latest()
	r := smp.rates["e/7"]
	if !near(r.in, 500) || !near(r.out, 2000) || !near(r.reqs, 5) || !near(r.err, 0.5) {
		t.Fatalf("rates after 2 s: %+v, want in 500 B/s, out 2000 B/s, 5 req/s, 0.5 5xx/s", r)
	}
	if h := smp.hist["e/7"]; len(h.in) != 1 || !near(h.in[0], 500) {
		t.Fatalf("history %+v, want one point of 500", h)
	}

	// 100 ms later an edge changed: same rates, no new point.
	e.set(1100, 4000, [5]int64{0, 8, 0, 1, 1})
	s.sample(t0.Add(2100 * time.Millisecond))
	smp, _ = s.latest()
	if r2 := smp.rates["e/7"]; r2 != r || len(smp.hist["e/7"].in) != 1 {
		t.Fatalf("a quick refresh changed the rates to %+v (history %d points)", r2, len(smp.hist["e/7"].in))
	}
	// The next full sample covers the whole span since the last full one.
	e.set(3000, 4000, [5]int64{0, 8, 0, 1, 1})
	s.sample(t0.Add(3 * time.Second))
	smp, _ = s.latest()
	if r := smp.rates["e/7"]; !near(r.in, 2000) || r.out != 0 || r.reqs != 0 {
		t.Fatalf("rates over the next second: %+v, want in 2000 B/s, nothing else", r)
	}

	// A tunnel gone is forgotten; counters that went backwards (the
	// tunnel re-registered) give no negative rate.
	e.set(10, 0, [5]int64{})
	s.sample(t0.Add(4 * time.Second))
	smp, _ = s.latest()
	if r := smp.rates["e/7"]; r.in != 0 || r.out != 0 || r.reqs != 0 {
		t.Fatalf("counters reset: %+v, want zero rates", r)
	}
	e.mu.Lock()
	e.snap.Tunnels = nil
	e.mu.Unlock()
	s.sample(t0.Add(5 * time.Second))
	if len(s.prev) != 0 || len(s.hist) != 0 {
		t.Fatalf("a gone tunnel is still tracked: %d counters, %d histories", len(s.prev), len(s.hist))
	}
}

func TestHistoryIsBounded(t *testing.T) {
	var s series
	for i := range 3 * histLen {
		s.push(float64(i), 0)
	}
	if len(s.in) != histLen || s.in[0] != float64(2*histLen) {
		t.Fatalf("history of %d points starting at %v, want the latest %d", len(s.in), s.in[0], histLen)
	}
}
