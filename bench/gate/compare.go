package gate

import (
	"fmt"
	"io"
	"strings"

	"github.com/sluicehq/sluice/bench/results"
)

// Failure is one gated figure outside its tolerance.
type Failure struct {
	Metric   string
	Baseline float64
	Measured float64
	Limit    float64
}

func (f Failure) String() string {
	return fmt.Sprintf("%s: measured %s, baseline %s, limit %s", f.Metric, results.Number(f.Measured), results.Number(f.Baseline), results.Number(f.Limit))
}

// Compare checks results against a baseline, printing one line per
// metric to w, and returns the failures. A figure missing from the results
// is an error: a gate that cannot measure must not pass.
func Compare(w io.Writer, r *results.Results, b *Baseline) ([]Failure, error) {
	var fails []Failure
	var missing []string
	for _, e := range b.Metrics {
		got, err := e.figure(r, b.System)
		if err != nil {
			missing = append(missing, err.Error())
			fmt.Fprintf(w, "MISSING %s: %v\n", e.describe(b.System), err)
			continue
		}
		var limit float64
		var ok bool
		if e.HigherIsBetter {
			limit = e.Value / e.Factor
			ok = got >= limit
		} else {
			limit = e.Value * e.Factor
			ok = got <= limit
		}
		rel := "≥"
		if !e.HigherIsBetter {
			rel = "≤"
		}
		status := "ok  "
		if !ok {
			status = "FAIL"
			fails = append(fails, Failure{Metric: e.describe(b.System), Baseline: e.Value, Measured: got, Limit: limit})
		}
		fmt.Fprintf(w, "%s %-44s measured %-8s baseline %-8s must be %s %s\n", status, e.describe(b.System), results.Number(got), results.Number(e.Value), rel, results.Number(limit))
	}
	if len(missing) > 0 {
		return fails, fmt.Errorf("gate could not measure: %s", strings.Join(missing, "; "))
	}
	return fails, nil
}
