package bench

import (
	"strings"
	"testing"
)

func findCheck(t *testing.T, checks []TargetCheck, prefix string) TargetCheck {
	t.Helper()
	for _, c := range checks {
		if strings.HasPrefix(c.Target, prefix) {
			return c
		}
	}
	t.Fatalf("no check starting %q in %+v", prefix, checks)
	return TargetCheck{}
}

func TestTargetChecksWithAnchors(t *testing.T) {
	r := synthetic(map[string]map[string]float64{
		MUpload:          {SystemDirect: 1000, SystemSluice: 400},   // 40%: >= 35%; 2x the 20% anchor
		MDownload:        {SystemDirect: 1000, SystemSluice: 300},   // 30%: misses 35%
		MLatP999:         {SystemDirect: 100, SystemSluice: 150},    // over the 127 µs anchor
		MemPerConn(1000): {SystemSluice: 10},                        // <= 17 KB
		MHTTPRPS:         {SystemDirect: 10000, SystemSluice: 2000}, // 20% of direct = 2.9x of 7%: misses 3x
	}, SystemDirect, SystemSluice, SystemRathole, SystemFRP)
	r.Systems[2].Skipped, r.Systems[3].Skipped = "absent", "absent"
	checks := TargetChecks(r)
	cases := map[string]string{
		"one connection upload ≥ 35%":              "met",
		"one connection download ≥ 35%":            "missed by 14%",
		"one connection upload ≥ 1.5x rathole":     "met",
		"64 B P99.9 ≤ rathole's (anchor":           "missed: 18% over",
		"memory per held connection ≤ 0.5x":        "met",
		"HTTP requests/s ≥ 3x frp (anchor":         "missed by 5%",
		"one connection download ≥ 1.5x rathole (": "missed by 43%",
	}
	for prefix, verdict := range cases {
		if got := findCheck(t, checks, prefix).Verdict; got != verdict {
			t.Errorf("%s: verdict %q, want %q", prefix, got, verdict)
		}
	}
}

func TestTargetChecksPreferMeasuredPeers(t *testing.T) {
	r := synthetic(map[string]map[string]float64{
		MUpload:          {SystemDirect: 1000, SystemSluice: 450, SystemRathole: 300},
		MemPerConn(1000): {SystemSluice: 20, SystemRathole: 34},
	}, SystemDirect, SystemSluice, SystemRathole)
	checks := TargetChecks(r)
	if c := findCheck(t, checks, "one connection upload ≥ 1.5x rathole"); c.Verdict != "met" || c.Measured != "1.50x rathole" {
		t.Errorf("measured rathole not used: %+v", c)
	}
	if c := findCheck(t, checks, "memory per held connection ≤ 0.5x rathole's"); !strings.HasPrefix(c.Verdict, "missed") {
		t.Errorf("20 KB vs 0.5 x 34 KB must miss: %+v", c)
	}
}

func TestTargetChecksNeedSluice(t *testing.T) {
	r := synthetic(map[string]map[string]float64{MUpload: {SystemDirect: 1000}}, SystemDirect)
	if c := TargetChecks(r); len(c) != 0 {
		t.Fatalf("no sluice figures, want no checks, got %+v", c)
	}
}
