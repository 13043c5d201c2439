package results

import (
	"math"
	"testing"

	"github.com/sluicehq/sluice/bench/plan"
)

func TestSummarize(t *testing.T) {
	cases := []struct {
		name                   string
		in                     []float64
		n                      int
		median, min, max, mean float64
		spread                 float64
	}{
		{"odd", []float64{3, 1, 2}, 3, 2, 1, 3, 2, 1},
		{"even", []float64{4, 1, 3, 2}, 4, 2.5, 1, 4, 2.5, 1.2},
		{"one", []float64{7}, 1, 7, 7, 7, 7, 0},
		{"NaN and Inf ignored", []float64{math.NaN(), 10, math.Inf(1), 20}, 2, 15, 10, 20, 15, 10.0 / 15},
		{"empty", nil, 0, 0, 0, 0, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Summarize(c.in)
			if s.N != c.n || s.Median != c.median || s.Min != c.min || s.Max != c.max || s.Mean != c.mean || math.Abs(s.Spread-c.spread) > 1e-9 {
				t.Fatalf("Summarize(%v) = %+v", c.in, s)
			}
		})
	}
}

func TestSummaryBest(t *testing.T) {
	s := Summarize([]float64{5, 9, 7})
	if s.Best(true) != 9 || s.Best(false) != 5 {
		t.Fatalf("Best: got %v / %v, want 9 / 5", s.Best(true), s.Best(false))
	}
}

func TestRatio(t *testing.T) {
	if Ratio(3, 4) != 0.75 {
		t.Fatal("Ratio(3,4) != 0.75")
	}
	if !math.IsNaN(Ratio(3, 0)) || !math.IsNaN(Ratio(math.NaN(), 1)) {
		t.Fatal("Ratio must be NaN when the base is zero or missing")
	}
}

func TestFinalizeRatiosToDirect(t *testing.T) {
	r := &Results{}
	r.Add(MUpload, plan.Direct, 2000)
	r.Add(MUpload, plan.Sluice, 1000)
	r.Add(MemPerConn(1000), plan.Sluice, 12)
	r.Finalize()
	if got := r.Metric(MUpload).Values[plan.Sluice].RatioToDirect; got != 0.5 {
		t.Fatalf("sluice/direct upload ratio = %v, want 0.5", got)
	}
	if got := r.Metric(MemPerConn(1000)).Values[plan.Sluice].RatioToDirect; got != 0 {
		t.Fatalf("memory has no direct figure, ratio must be 0 (n/a), got %v", got)
	}
}

func TestMetricDefsForMemoryIDs(t *testing.T) {
	d := DefFor(MemPerConn(10000))
	if d.Scenario != plan.Memory || d.Unit != "KB" || d.Higher {
		t.Fatalf("defFor(%s) = %+v", MemPerConn(10000), d)
	}
	if d := DefFor(MemSuccess(1000)); d.Unit != "%" || !d.Higher {
		t.Fatalf("defFor(%s) = %+v", MemSuccess(1000), d)
	}
	if d := DefFor("memory.c12x.kb_per_conn"); d.Scenario != "other" {
		t.Fatalf("a malformed id must not parse as a memory metric: %+v", d)
	}
}

func TestWANMetricIDs(t *testing.T) {
	l := plan.WANLink{RTTms: 50, RateMBps: 100}
	id := WANMetric(l, WANUpload)
	if id != "wan.rtt50-100MB.upload_mbps" {
		t.Fatalf("WANMetric = %q", id)
	}
	d := DefFor(id)
	if d.Scenario != plan.WAN || d.Unit != "MB/s" || !d.Higher || d.Title != "50 ms RTT, 100 MB/s: one connection, upload" {
		t.Fatalf("DefFor(%s) = %+v", id, d)
	}
	if d := DefFor(WANMetric(plan.WANLink{RTTms: 50}, WANLoadP99)); d.Higher || d.Unit != "µs" || d.Title != "50 ms RTT, no rate cap: 64 B round trip under 2 bulk P99" {
		t.Fatalf("uncapped loaded P99: %+v", d)
	}
	for _, bad := range []string{"wan.rtt50-100MB.speed", "wan.fast.upload_mbps", "wan.upload_mbps"} {
		if d := DefFor(bad); d.Scenario != "other" {
			t.Errorf("DefFor(%q) = %+v, want unknown", bad, d)
		}
	}
}
