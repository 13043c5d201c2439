package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/sluicehq/sluice/bench/gate"
	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/report"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/run"
	"github.com/sluicehq/sluice/bench/systems"
)

var errGateFailed = errors.New("gate failed")

func cmdGate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gate", flag.ExitOnError)
	var f runFlags
	f.register(fs, "gate", "")
	baseline := fs.String("baseline", "bench/baseline.json", "committed baseline to compare with")
	write := fs.Bool("write-baseline", false, "measure and write the baseline instead of comparing")
	baseRuns := fs.Int("baseline-runs", 3, "with -write-baseline: gate runs whose median figures make the baseline")
	from := fs.String("results", "", "compare this results JSON instead of measuring")
	attempts := fs.Int("attempts", 2, "measure again when a comparison fails; fail only if every attempt fails (a noisy machine rarely fails twice, a slower tunnel always does)")
	fs.Parse(args)
	if *from != "" {
		res, err := results.Read(*from)
		if err != nil {
			return err
		}
		_, err = compareGate(res, *baseline, *write)
		return err
	}
	p, err := f.params()
	if err != nil {
		return err
	}
	prog := run.NewProgress(os.Stderr)
	sys, cleanup, err := buildSystems(p.Systems, &f, prog, true)
	defer cleanup()
	if err != nil {
		return err
	}
	if *attempts < 1 || *write {
		*attempts = 1
	}
	if *write {
		return writeBaseline(ctx, p, sys, prog, &f, *baseline, *baseRuns)
	}
	for i := 1; ; i++ {
		r := &run.Runner{Params: p, Systems: sys, Progress: prog, Dir: f.dir, Command: commandLine()}
		res, err := r.Run(ctx)
		if err != nil {
			return err
		}
		fmt.Println()
		report.WriteTable(os.Stdout, res)
		if f.out != "" {
			if err := res.WriteFile(f.out); err != nil {
				return err
			}
		}
		var fails []gate.Failure
		fails, err = compareGate(res, *baseline, *write)
		if !errors.Is(err, errGateFailed) || i >= *attempts {
			return err
		}
		if gross(fails) {
			fmt.Fprintln(os.Stderr, "bench-gate: a figure is more than twice past its limit: that is no noise, so no second attempt")
			return err
		}
		fmt.Fprintf(os.Stderr, "bench-gate: attempt %d of %d failed; measuring again to tell noise from a regression\n", i, *attempts)
	}
}

func compareGate(res *results.Results, baselinePath string, write bool) ([]gate.Failure, error) {
	if write {
		b, err := gate.New(res, plan.Sluice)
		if err != nil {
			return nil, err
		}
		if err := b.WriteFile(baselinePath); err != nil {
			return nil, err
		}
		fmt.Printf("baseline written to %s\n", baselinePath)
		return nil, nil
	}
	b, err := gate.Read(baselinePath)
	if err != nil {
		return nil, err
	}
	fmt.Printf("\ngate: %s vs %s (measured %s)\n", b.System, baselinePath, b.Measured)
	fails, err := gate.Compare(os.Stdout, res, b)
	if err != nil {
		return nil, err
	}
	if len(fails) > 0 {
		for _, f := range fails {
			fmt.Fprintf(os.Stderr, "bench-gate FAILED: %s\n", f)
		}
		fmt.Fprintln(os.Stderr, "If the change is meant to cost this, regenerate the baseline (sluice-bench gate -write-baseline) and say why in the commit.")
		return fails, errGateFailed
	}
	fmt.Println("bench-gate passed")
	return nil, nil
}

// writeBaseline measures the gate runs times and writes the median figures.
func writeBaseline(ctx context.Context, p plan.Params, sys []systems.System, prog *run.Progress, f *runFlags, path string, runs int) error {
	if runs < 1 {
		runs = 1
	}
	var bs []*gate.Baseline
	for i := 1; i <= runs; i++ {
		prog.Printf("baseline run %d of %d", i, runs)
		r := &run.Runner{Params: p, Systems: sys, Progress: prog, Dir: f.dir, Command: commandLine()}
		res, err := r.Run(ctx)
		if err != nil {
			return err
		}
		b, err := gate.New(res, plan.Sluice)
		if err != nil {
			return err
		}
		bs = append(bs, b)
	}
	b, err := gate.Median(bs)
	if err != nil {
		return err
	}
	if err := b.WriteFile(path); err != nil {
		return err
	}
	fmt.Printf("baseline (median of %d runs) written to %s\n", runs, path)
	return nil
}

// gross reports a failure far past its limit (more than 2x), which noise
// does not explain.
func gross(fails []gate.Failure) bool {
	for _, f := range fails {
		if f.Limit > 0 && (f.Measured > 2*f.Limit || f.Measured < f.Limit/2) {
			return true
		}
	}
	return false
}
