package gate

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/results/resultstest"
)

func gateResults(up, down, p99 float64, mem float64) *results.Results {
	return gateResultsWAN(up, down, p99, mem, 90)
}

func gateResultsWAN(up, down, p99, mem, wan float64) *results.Results {
	return resultstest.Synthetic(map[string]map[string]float64{
		results.MUpload:          {plan.Direct: 2000, plan.Relay: 1000, plan.Sluice: up},
		results.MDownload:        {plan.Direct: 2000, plan.Relay: 1000, plan.Sluice: down},
		results.MLatP99:          {plan.Direct: 30, plan.Relay: 100, plan.Sluice: p99},
		results.MemPerConn(1000): {plan.Sluice: mem},
		results.WANMetric(GateWAN, results.WANUpload):   {plan.Direct: 95, plan.Sluice: wan},
		results.WANMetric(GateWAN, results.WANDownload): {plan.Direct: 95, plan.Sluice: wan},
	}, plan.Direct, plan.Relay, plan.Sluice)
}

func TestCompare(t *testing.T) {
	base, err := New(gateResults(500, 600, 200, 10), plan.Sluice)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		res      *results.Results
		failures []string
	}{
		{"same figures pass", gateResults(500, 600, 200, 10), nil},
		{"noise within tolerance passes", gateResults(300, 350, 380, 14), nil},
		{"halved throughput fails", gateResults(240, 600, 200, 10), []string{results.MUpload}},
		{"round trip P99 2.5x fails", gateResults(500, 600, 500, 10), []string{results.MLatP99}},
		{"memory up 60% fails", gateResults(500, 600, 200, 16), []string{results.MemPerConn(1000)}},
		{"a WAN window that stops growing fails", gateResultsWAN(500, 600, 200, 10, 5), []string{results.WANMetric(GateWAN, results.WANUpload), results.WANMetric(GateWAN, results.WANDownload)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			fails, err := Compare(&out, c.res, base)
			if err != nil {
				t.Fatal(err)
			}
			if len(fails) != len(c.failures) {
				t.Fatalf("failures %v, want %v\n%s", fails, c.failures, out.String())
			}
			for i, f := range fails {
				if !strings.HasPrefix(f.Metric, c.failures[i]) {
					t.Fatalf("failure %d names %q, want %q", i, f.Metric, c.failures[i])
				}
				msg := f.String()
				for _, want := range []string{"measured", "baseline", "limit", c.failures[i]} {
					if !strings.Contains(msg, want) {
						t.Fatalf("failure message %q lacks %q", msg, want)
					}
				}
			}
		})
	}
}

func TestCompareBaselineMissingFigureIsAnError(t *testing.T) {
	base, _ := New(gateResults(500, 600, 200, 10), plan.Sluice)
	r := resultstest.Synthetic(map[string]map[string]float64{results.MUpload: {plan.Direct: 1000, plan.Sluice: 500}}, plan.Direct, plan.Sluice)
	if _, err := Compare(&bytes.Buffer{}, r, base); err == nil {
		t.Fatal("a gate that could not measure every figure must not pass")
	}
}

func TestBaselineFileRoundTrip(t *testing.T) {
	base, _ := New(gateResults(500, 600, 200, 10), plan.Sluice)
	path := filepath.Join(t.TempDir(), "baseline.json")
	if err := base.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Metrics) != len(Metrics) || back.Metrics[0].Value != 0.5 {
		t.Fatalf("baseline round trip: %+v", back.Metrics)
	}
	back.Metrics[0].Factor = 0.5
	back.WriteFile(path)
	if _, err := Read(path); err == nil {
		t.Fatal("a tolerance factor below 1 must be refused")
	}
}

func TestMedian(t *testing.T) {
	var runs []*Baseline
	for _, up := range []float64{300, 500, 900} {
		b, err := New(gateResults(up, 600, 200, 10), plan.Sluice)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, b)
	}
	m, err := Median(runs)
	if err != nil {
		t.Fatal(err)
	}
	if m.Metrics[0].ID != results.MUpload || m.Metrics[0].Value != 0.5 {
		t.Fatalf("median upload ratio = %v (%s), want 0.5", m.Metrics[0].Value, m.Metrics[0].ID)
	}
	if _, err := Median(nil); err == nil {
		t.Fatal("no runs accepted")
	}
}
