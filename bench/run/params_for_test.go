package run

import (
	"slices"
	"testing"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/systems"
)

func TestParamsForLimitsSluiceInspectToHTTP(t *testing.T) {
	p, err := plan.Preset("full")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.Systems, plan.SluiceInspect) {
		t.Fatalf("make bench does not measure %s: %v", plan.SluiceInspect, p.Systems)
	}
	inspect, _ := systems.New(plan.SluiceInspect, "/bin/true")
	if got := paramsFor(p, inspect).Scenarios; !slices.Equal(got, []string{plan.HTTP}) {
		t.Fatalf("sluice-inspect runs %v, want only %s", got, plan.HTTP)
	}
	plain, _ := systems.New(plan.Sluice, "/bin/true")
	if got := paramsFor(p, plain).Scenarios; !slices.Equal(got, p.Scenarios) {
		t.Fatalf("sluice runs %v, want every scenario %v", got, p.Scenarios)
	}
}
