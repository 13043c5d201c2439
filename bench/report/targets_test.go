package report

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/results/resultstest"
)

func findCheck(t *testing.T, checks []Check, prefix string) Check {
	t.Helper()
	for _, c := range checks {
		if strings.HasPrefix(c.Target, prefix) {
			return c
		}
	}
	t.Fatalf("no check starting %q in %+v", prefix, checks)
	return Check{}
}

func mustTargets(t *testing.T) *Targets {
	t.Helper()
	tg, err := LoadTargets()
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// Every id in the data file must be one the harness measures, or the
// check would silently never appear.
func TestTargetsFileNamesKnownMetrics(t *testing.T) {
	tg := mustTargets(t)
	known := func(id string) bool { return results.DefFor(id).Scenario != "other" }
	for _, x := range tg.Targets {
		if !known(x.Metric) {
			t.Errorf("target names unknown metric %q", x.Metric)
		}
	}
	for _, run := range tg.AnchorRuns {
		for sys, figs := range run.Figures {
			for id := range figs {
				if !known(id) {
					t.Errorf("anchor run %s, %s: unknown metric %q", run.ID, sys, id)
				}
			}
		}
	}
}

func TestParseTargetsRefusesAmbiguousBounds(t *testing.T) {
	for _, bad := range []string{
		`{"targets":[{"metric":"latency.p50_us","vs":"rathole","at_least":1,"at_most":2}]}`,
		`{"targets":[{"metric":"latency.p50_us"}]}`,
		`{"targets":[{"metric":"latency.p50_us","at_most":0.8}]}`,
	} {
		if _, err := parseTargets([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestChecksWithAnchors(t *testing.T) {
	r := resultstest.Synthetic(map[string]map[string]float64{
		// 1260 of 3150 is 40% of direct, rathole's anchor is 816/3150
		// (25.9%): 1.54x, met. Download: 30% against 30.3%, 0.99x.
		results.MUpload:   {plan.Direct: 3150, plan.Sluice: 1260},
		results.MDownload: {plan.Direct: 3150, plan.Sluice: 945},
		// 500 µs against rathole's 569: 0.88x, over the 0.8x target.
		results.MLatP999:         {plan.Direct: 100, plan.Sluice: 500},
		results.MemPerConn(1000): {plan.Sluice: 10},
		// frp's anchor is 4607 req/s: 13,000 is 2.8x, short of 3x.
		results.MHTTPRPS: {plan.Direct: 40000, plan.Sluice: 13000},
	}, plan.Direct, plan.Sluice, plan.Rathole, plan.FRP)
	r.Systems[2].Skipped, r.Systems[3].Skipped = "absent", "absent"
	checks := mustTargets(t).Checks(r)
	cases := map[string]string{
		"One connection, upload ≥ 1.5x rathole":    "met",
		"One connection, download ≥ 1.5x rathole":  "missed by 34%",
		"64 B round trip P99.9 ≤ 0.8x rathole":     "missed: 10% over",
		"Memory per held connection, 1000":         "met",
		"HTTP GET, 50 keep-alive connections ≥ 3x": "missed by 6%",
	}
	for prefix, verdict := range cases {
		if got := findCheck(t, checks, prefix).Verdict; got != verdict {
			t.Errorf("%s: verdict %q, want %q (%+v)", prefix, got, verdict, findCheck(t, checks, prefix))
		}
	}
	if c := findCheck(t, checks, "One connection, upload ≥ 1.5x rathole"); !strings.Contains(c.Measured, "anchor 2026-12-01") {
		t.Errorf("an anchored check must say where the peer's figure is from: %+v", c)
	}
	for _, c := range checks {
		if strings.HasPrefix(c.Target, plan.SluiceTLS) {
			t.Errorf("sluice-tls did not run, yet a check names it: %+v", c)
		}
	}
}

func TestChecksPreferMeasuredPeers(t *testing.T) {
	r := resultstest.Synthetic(map[string]map[string]float64{
		results.MUpload:   {plan.Direct: 1000, plan.Sluice: 450, plan.Rathole: 300},
		results.MLatP999:  {plan.Direct: 100, plan.Sluice: 150, plan.Rathole: 200},
		results.MConnRate: {plan.Sluice: 100, plan.Rathole: 100},
	}, plan.Direct, plan.Sluice, plan.Rathole)
	checks := mustTargets(t).Checks(r)
	if c := findCheck(t, checks, "One connection, upload ≥ 1.5x rathole"); c.Verdict != "met" || !strings.Contains(c.Measured, "1.50x rathole") || !strings.Contains(c.Measured, "in this run") {
		t.Errorf("measured rathole not used: %+v", c)
	}
	if c := findCheck(t, checks, "64 B round trip P99.9 ≤ 0.8x rathole"); c.Verdict != "met" {
		t.Errorf("150 µs against rathole's 200 is 0.75x, within 0.8x: %+v", c)
	}
	if c := findCheck(t, checks, "New connections"); !strings.HasPrefix(c.Verdict, "missed") {
		t.Errorf("equal connection rates miss 1.5x: %+v", c)
	}
}

func TestChecksTLSAgainstPlainInTheSameRun(t *testing.T) {
	r := resultstest.Synthetic(map[string]map[string]float64{
		results.MUpload:   {plan.Direct: 3000, plan.Sluice: 1000, plan.SluiceTLS: 700},
		results.MDownload: {plan.Direct: 3000, plan.Sluice: 1000, plan.SluiceTLS: 900},
	}, plan.Direct, plan.Sluice, plan.SluiceTLS)
	checks := mustTargets(t).Checks(r)
	if c := findCheck(t, checks, "sluice-tls: One connection, upload ≥ 0.85x sluice"); c.Verdict != "missed by 18%" {
		t.Errorf("TLS upload at 0.7x of plain: %+v", c)
	}
	if c := findCheck(t, checks, "sluice-tls: One connection, download ≥ 0.85x sluice"); c.Verdict != "met" {
		t.Errorf("TLS download at 0.9x of plain: %+v", c)
	}
}

func TestChecksPolicyAgainstNoPolicyInTheSameRun(t *testing.T) {
	r := resultstest.Synthetic(map[string]map[string]float64{
		results.MHTTPRPS:     {plan.Direct: 20000, plan.Sluice: 6000, plan.SluicePolicy: 5600},
		results.MHTTPEdgeCPU: {plan.Sluice: 100, plan.SluicePolicy: 104},
	}, plan.Direct, plan.Sluice, plan.SluicePolicy)
	checks := mustTargets(t).Checks(r)
	if c := findCheck(t, checks, "sluice-policy: HTTP GET, 50 keep-alive connections ≥ 0.95x sluice"); c.Verdict != "missed by 2%" || !strings.Contains(c.Measured, "in this run") {
		t.Errorf("policy at 0.93x of no policy: %+v", c)
	}
	if c := findCheck(t, checks, "sluice-policy: Edge CPU per HTTP request ≤ 1.05x sluice"); c.Verdict != "met" {
		t.Errorf("104 µs against 100 µs per request: %+v", c)
	}
	alone := resultstest.Synthetic(map[string]map[string]float64{
		results.MHTTPRPS: {plan.Direct: 20000, plan.SluicePolicy: 5600},
	}, plan.Direct, plan.SluicePolicy)
	for _, c := range mustTargets(t).Checks(alone) {
		if strings.HasPrefix(c.Target, plan.SluicePolicy) {
			t.Errorf("without sluice in the run there is nothing to compare the policy with: %+v", c)
		}
	}
}

// Figures of two systems measured in every round are also compared round
// by round: each pair ran under the same load.
func TestChecksGiveRoundByRoundRatios(t *testing.T) {
	r := resultstest.Synthetic(nil, plan.Direct, plan.Sluice, plan.SluicePolicy)
	r.Params.Rounds = 3
	for _, v := range [][2]float64{{6000, 5400}, {5000, 5100}, {7000, 7070}} {
		r.Add(results.MHTTPRPS, plan.Sluice, v[0])
		r.Add(results.MHTTPRPS, plan.SluicePolicy, v[1])
	}
	r.Add(results.MHTTPEdgeCPU, plan.Sluice, 100)
	r.Add(results.MHTTPEdgeCPU, plan.SluicePolicy, 101)
	r.Finalize()
	checks := mustTargets(t).Checks(r)
	c := findCheck(t, checks, "sluice-policy: HTTP GET")
	if !strings.Contains(c.Measured, "= 0.90x sluice") || !strings.Contains(c.Measured, "round by round 1.01x (0.90–1.02)") {
		t.Errorf("medians 5400 against 6000, rounds 0.90, 1.02 and 1.01: %+v", c)
	}
	if c := findCheck(t, checks, "sluice-policy: Edge CPU"); strings.Contains(c.Measured, "round by round") {
		t.Errorf("one round of three measured: no round-by-round figure, got %+v", c)
	}
}

func TestChecksHoldEachIdleAgentSessionTo32KBPlainAnd64KBTLS(t *testing.T) {
	r := resultstest.Synthetic(map[string]map[string]float64{
		// The first agent's growth carries code pages and is no target;
		// each further session is, with TLS and without.
		results.MMemTunnel:  {plan.Sluice: 400, plan.SluiceTLS: 500},
		results.MMemSession: {plan.Sluice: 30, plan.SluiceTLS: 80},
	}, plan.Direct, plan.Sluice, plan.SluiceTLS)
	checks := mustTargets(t).Checks(r)
	if c := findCheck(t, checks, "Edge RSS per further idle agent session"); c.Verdict != "met" {
		t.Errorf("30 KB per session against a 32 KB target: %+v", c)
	}
	if c := findCheck(t, checks, "sluice-tls: Edge RSS per further idle agent session"); c.Verdict != "missed: 25% over" {
		t.Errorf("80 KB per TLS session against a 64 KB target: %+v", c)
	}
	for _, c := range checks {
		if strings.HasPrefix(c.Target, "Edge RSS added by one agent") {
			t.Errorf("the first agent's growth is reported, not held to a target: %+v", c)
		}
	}
}

func TestChecksNeedSluice(t *testing.T) {
	r := resultstest.Synthetic(map[string]map[string]float64{results.MUpload: {plan.Direct: 1000}}, plan.Direct)
	if c := mustTargets(t).Checks(r); len(c) != 0 {
		t.Fatalf("no sluice figures, want no checks, got %+v", c)
	}
}
