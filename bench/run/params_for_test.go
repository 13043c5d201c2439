package run

import (
	"slices"
	"testing"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/systems"
)

func TestParamsForLimitsSluiceInspectAndPolicyToHTTP(t *testing.T) {
	p, err := plan.Preset("full")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{plan.SluiceInspect, plan.SluicePolicy} {
		for _, preset := range []string{"full", "quick"} {
			pp, _ := plan.Preset(preset)
			if !slices.Contains(pp.Systems, name) {
				t.Fatalf("preset %s does not measure %s: %v", preset, name, pp.Systems)
			}
		}
		s, _ := systems.New(name, "/bin/true")
		if got := paramsFor(p, s).Scenarios; !slices.Equal(got, []string{plan.HTTP}) {
			t.Fatalf("%s runs %v, want only %s", name, got, plan.HTTP)
		}
	}
	if gate, _ := plan.Preset("gate"); slices.Contains(gate.Systems, plan.SluicePolicy) {
		t.Fatalf("the gate preset measures %s: %v", plan.SluicePolicy, gate.Systems)
	}
	plain, _ := systems.New(plan.Sluice, "/bin/true")
	if got := paramsFor(p, plain).Scenarios; !slices.Equal(got, p.Scenarios) {
		t.Fatalf("sluice runs %v, want every scenario %v", got, p.Scenarios)
	}
}
