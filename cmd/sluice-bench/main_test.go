package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/bench/gate"
	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/run"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	run.MaybeRunChild()
	goleak.VerifyTestMain(m)
}

func parseRunFlags(t *testing.T, args ...string) *runFlags {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var f runFlags
	f.register(fs, "full", "out.json")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &f
}

func TestFlagsOverridePreset(t *testing.T) {
	f := parseRunFlags(t, "-preset", "quick", "-systems", "sluice,direct", "-rounds", "5", "-throughput-mib", "64", "-memory-conns", "100,200", "-scenarios", "latency,memory")
	p, err := f.params()
	if err != nil {
		t.Fatal(err)
	}
	if p.Preset != "quick" || p.Rounds != 5 || p.ThroughputMiB != 64 || len(p.MemoryConns) != 2 || p.MemoryConns[1] != 200 {
		t.Fatalf("params = %+v", p)
	}
	if p.Systems[0] != plan.Direct || p.Systems[1] != plan.Sluice {
		t.Fatalf("direct must run first: %v", p.Systems)
	}
	if !p.Has(plan.Latency) || p.Has(plan.Throughput) {
		t.Fatalf("scenarios = %v", p.Scenarios)
	}
	for _, bad := range [][]string{{"-memory-conns", "many"}, {"-scenarios", "speed"}, {"-preset", "huge"}} {
		if _, err := parseRunFlags(t, bad...).params(); err == nil {
			t.Errorf("flags %v accepted", bad)
		}
	}
}

func TestExternalFlags(t *testing.T) {
	f := parseRunFlags(t, "-target", "tcp=target:5201,http=target:3000", "-source", "docker",
		"-external", "sluice=edge:6002,http=edge:8080,cgroup=/cg/s", "-external", "rathole=rh:6002")
	r := &run.Runner{}
	if err := f.applyExternal(r); err != nil {
		t.Fatal(err)
	}
	if r.TargetTCP != "target:5201" || r.TargetHTTP != "target:3000" || r.Source != "docker" {
		t.Fatalf("runner target/source = %q %q %q", r.TargetTCP, r.TargetHTTP, r.Source)
	}
	var names []string
	for _, s := range r.Systems {
		names = append(names, s.Name())
	}
	if fmt.Sprint(names) != "[direct sluice rathole]" {
		t.Fatalf("systems = %v", names)
	}
	if err := parseRunFlags(t, "-target", "tcp=x:1").applyExternal(&run.Runner{}); err == nil {
		t.Fatal("a target without http= accepted")
	}
}

// resultsJSON writes a minimal results file: sluice's figures scaled by k
// (k > 1 means a slower, hungrier sluice).
func resultsJSON(t *testing.T, dir string, k float64) string {
	t.Helper()
	series := func(v float64) string {
		return fmt.Sprintf(`{"samples":[%g],"n":1,"median":%g,"min":%g,"max":%g,"mean":%g,"spread":0}`, v, v, v, v, v)
	}
	// ref is the figure of the system the gate divides by (gate.Metrics
	// names it: the relay on loopback, direct across the WAN link).
	metric := func(id string, higher bool, ref, sluice float64) string {
		d := ""
		if ref > 0 {
			name := plan.Direct
			for _, e := range gate.Metrics {
				if e.ID == id && e.Reference != "" {
					name = e.Reference
				}
			}
			d = fmt.Sprintf("%q:", name) + series(ref) + ","
		}
		return fmt.Sprintf(`{"id":%q,"scenario":"x","title":"x","unit":"x","higher_is_better":%v,"values":{%s"sluice":%s}}`, id, higher, d, series(sluice))
	}
	js := fmt.Sprintf(`{"schema":%d,"preset":"gate","systems":[{"name":"direct"},{"name":"relay"},{"name":"sluice"}],"metrics":[%s,%s,%s,%s,%s,%s]}`,
		results.SchemaVersion,
		metric(results.MUpload, true, 1000, 500/k),
		metric(results.MDownload, true, 1000, 500/k),
		metric(results.MLatP99, false, 100, 200*k),
		metric(results.MemPerConn(1000), false, 0, 20*k),
		metric(results.WANMetric(gate.GateWAN, results.WANUpload), true, 95, 90/k),
		metric(results.WANMetric(gate.GateWAN, results.WANDownload), true, 95, 90/k))
	path := filepath.Join(dir, fmt.Sprintf("results-%g.json", k))
	if err := os.WriteFile(path, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGateCommandOnResultsFiles(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "baseline.json")
	load := func(k float64) *results.Results {
		r, err := results.Read(resultsJSON(t, dir, k))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if _, err := compareGate(load(1), base, true); err != nil {
		t.Fatalf("write baseline: %v", err)
	}
	if _, err := compareGate(load(1.2), base, false); err != nil {
		t.Fatalf("20%% worse is within tolerance, gate said: %v", err)
	}
	fails, err := compareGate(load(5), base, false)
	if !errors.Is(err, errGateFailed) || len(fails) != len(gate.Metrics) {
		t.Fatalf("5x worse: err %v, %d failures; want the gate to fail on all %d figures", err, len(fails), len(gate.Metrics))
	}
	if !gross(fails) {
		t.Fatal("5x past the baseline must count as gross (no retry)")
	}
	marginal, _ := compareGate(load(2.2), base, false)
	if len(marginal) == 0 || gross(marginal) {
		t.Fatalf("2.2x worse must fail marginally (retry allowed): %v", marginal)
	}
}
