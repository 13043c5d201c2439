// Package resultstest builds results by hand, so the code that reads them
// (report, gate, capacity) is tested without running anything.
package resultstest

import (
	"sort"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
)

// Synthetic returns finalized quick-preset results with one sample per
// metric and system: vals maps a metric id to each system's value.
func Synthetic(vals map[string]map[string]float64, systems ...string) *results.Results {
	r := &results.Results{Schema: results.SchemaVersion, Preset: "quick", Command: "go run ./cmd/sluice-bench run -preset quick"}
	r.Params, _ = plan.Preset("quick")
	for _, s := range systems {
		r.Systems = append(r.Systems, results.SystemResult{Name: s, Version: "test"})
	}
	for _, id := range SortedKeys(vals) {
		for _, s := range SortedKeys(vals[id]) {
			r.Add(id, s, vals[id][s])
		}
	}
	r.Finalize()
	return r
}

// SortedKeys returns a map's keys sorted, for stable output.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
