package bench

import (
	"math"
	"testing"
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
	r := synthetic(map[string]map[string]float64{
		MUpload:          {SystemDirect: 2000, SystemSluice: 1000},
		MemPerConn(1000): {SystemSluice: 12},
	}, SystemDirect, SystemSluice)
	if got := r.Metric(MUpload).Values[SystemSluice].RatioToDirect; got != 0.5 {
		t.Fatalf("sluice/direct upload ratio = %v, want 0.5", got)
	}
	if got := r.Metric(MemPerConn(1000)).Values[SystemSluice].RatioToDirect; got != 0 {
		t.Fatalf("memory has no direct figure, ratio must be 0 (n/a), got %v", got)
	}
}

func TestMetricDefsForMemoryIDs(t *testing.T) {
	d := defFor(MemPerConn(10000))
	if d.scenario != ScenMemory || d.unit != "KB" || d.higher {
		t.Fatalf("defFor(%s) = %+v", MemPerConn(10000), d)
	}
	if d := defFor(MemSuccess(1000)); d.unit != "%" || !d.higher {
		t.Fatalf("defFor(%s) = %+v", MemSuccess(1000), d)
	}
	if d := defFor("memory.c12x.kb_per_conn"); d.scenario != "other" {
		t.Fatalf("a malformed id must not parse as a memory metric: %+v", d)
	}
}

func TestPresets(t *testing.T) {
	for _, name := range []string{"full", "quick", "gate"} {
		p, err := PresetParams(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("preset %s invalid: %v", name, err)
		}
		if p.Rounds < 3 {
			t.Fatalf("preset %s runs %d rounds; the method needs at least 3", name, p.Rounds)
		}
	}
	full, _ := PresetParams("full")
	if full.ThroughputMiB != 512 || full.ParallelConns != 10 || full.ParallelMiB != 64 || full.LatencyWarmup != 1000 || full.LatencyRounds != 10000 {
		t.Fatalf("full preset does not match the issue's sizes: %+v", full)
	}
	if _, err := PresetParams("huge"); err == nil {
		t.Fatal("unknown preset accepted")
	}
	bad := full
	bad.Scenarios = []string{"nope"}
	if bad.Validate() == nil {
		t.Fatal("unknown scenario accepted")
	}
}
