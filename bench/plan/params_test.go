package plan

import "testing"

func TestPresets(t *testing.T) {
	for _, name := range []string{"full", "quick", "gate"} {
		p, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("preset %s invalid: %v", name, err)
		}
		if p.Rounds < 3 {
			t.Fatalf("preset %s runs %d rounds; the method needs at least 3", name, p.Rounds)
		}
	}
	full, _ := Preset("full")
	if full.ThroughputMiB != 512 || full.ParallelConns != 10 || full.ParallelMiB != 64 || full.LatencyWarmup != 1000 || full.LatencyRounds != 10000 {
		t.Fatalf("full preset sizes changed: %+v", full)
	}
	if _, err := Preset("huge"); err == nil {
		t.Fatal("unknown preset accepted")
	}
	bad := full
	bad.Scenarios = []string{"nope"}
	if bad.Validate() == nil {
		t.Fatal("unknown scenario accepted")
	}
}

func TestOrderSystemsPutsDirectFirst(t *testing.T) {
	got := OrderSystems([]string{Sluice, FRP, Direct})
	want := []string{Direct, Sluice, FRP}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("OrderSystems = %v, want %v", got, want)
		}
	}
}

func TestWANLinkNamesRoundTrip(t *testing.T) {
	for _, l := range []WANLink{{10, 100}, {50, 100}, {200, 100}, {50, 0}, {2.5, 12.5}} {
		back, ok := ParseWANName(l.Name())
		if !ok || back != l {
			t.Errorf("ParseWANName(%q) = %+v, %v; want %+v", l.Name(), back, ok, l)
		}
	}
	for _, bad := range []string{"", "rtt", "rtt50", "rtt50-100", "rttx-100MB", "rtt50-0MB", "rtt50-100MBx"} {
		if _, ok := ParseWANName(bad); ok {
			t.Errorf("ParseWANName(%q) accepted", bad)
		}
	}
}

// The fleet scenario is part of the full run only; gate keeps its list.
func TestFleetScenarioInFullOnly(t *testing.T) {
	full, _ := Preset("full")
	quick, _ := Preset("quick")
	gate, _ := Preset("gate")
	if !full.Has(Fleet) || quick.Has(Fleet) || gate.Has(Fleet) {
		t.Fatalf("fleet in full %v, quick %v, gate %v; want only full", full.Has(Fleet), quick.Has(Fleet), gate.Has(Fleet))
	}
	if err := full.Validate(); err != nil {
		t.Fatal(err)
	}
	full.FleetAgents = 0
	if err := full.Validate(); err == nil {
		t.Fatal("a fleet scenario with no agents passed validation")
	}
}
