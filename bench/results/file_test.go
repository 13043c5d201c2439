package results_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/results/resultstest"
)

func TestResultsRoundTripJSON(t *testing.T) {
	r := resultstest.Synthetic(map[string]map[string]float64{results.MUpload: {plan.Direct: 2000, plan.Sluice: 900}}, plan.Direct, plan.Sluice)
	path := filepath.Join(t.TempDir(), "sub", "r.json")
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := results.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := back.Median(results.MUpload, plan.Sluice); !ok || v != 900 {
		t.Fatalf("round trip lost the upload median: %v %v", v, ok)
	}
	os.WriteFile(path, []byte(`{"schema": 99}`), 0o644)
	if _, err := results.Read(path); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Fatalf("a results file of another schema must be refused, got %v", err)
	}
}
