package bench

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The harness re-executes its own binary as the target service and the
	// relay; in tests that binary is this test executable.
	MaybeRunChild()
	goleak.VerifyTestMain(m)
}

// synthetic builds results with the given medians (one sample each) so
// report, gate, capacity and target code can be tested without running.
func synthetic(vals map[string]map[string]float64, systems ...string) *Results {
	r := &Results{Schema: SchemaVersion, Preset: "quick", Command: "go run ./cmd/sluice-bench run -preset quick"}
	r.Params, _ = PresetParams("quick")
	for _, s := range systems {
		r.Systems = append(r.Systems, SystemResult{Name: s, Version: "test"})
	}
	for _, id := range sortedKeys(vals) {
		for _, s := range sortedKeys(vals[id]) {
			r.Add(id, defFor(id), s, vals[id][s])
		}
	}
	r.Finalize()
	return r
}
