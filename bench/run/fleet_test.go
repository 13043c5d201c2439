package run

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/systems"
)

// The fleet scenario on the real binary, small: three edges start, a
// forwarded GET and a direct one are measured, names are registered with
// the embedded store and with a store behind the link, and every figure
// lands in the results.
func TestRunnerFleetScenario(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sluice")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sluice")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/sluice: %v\n%s", err, out)
	}
	p := tinyParams(plan.Sluice)
	p.Scenarios = []string{plan.Fleet}
	p.FleetConns, p.FleetSec, p.FleetAgents, p.FleetTunnels, p.FleetStoreRTTms = 4, 0.3, 3, 2, 10
	p.StartupTimeoutSec = 30
	var log bytes.Buffer
	r := &Runner{Params: p, Systems: []systems.System{systems.Sluice(bin, nil)}, Progress: NewProgress(&log)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	if res.Failures != 0 {
		t.Fatalf("%d failures: %v\n%s", res.Failures, res.Notes, log.String())
	}
	for _, id := range []string{results.MFleetOwnP50, results.MFleetFwdP50, results.MFleetRPSRatio, results.MFleetRegs, results.MFleetRegsFar, results.MFleetEdgeIdle} {
		if v, ok := res.Median(id, plan.Sluice); !ok || v <= 0 {
			t.Errorf("%s = %v (recorded %v)", id, v, ok)
		}
	}
}
