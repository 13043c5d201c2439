package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/bench/report"
	"github.com/sluicehq/sluice/bench/run"
	"github.com/sluicehq/sluice/bench/systems"
)

func cmdRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var f runFlags
	f.register(fs, "full", "bench/results.json")
	withReport := fs.Bool("report", false, "also regenerate BENCHMARKS.md and bench/charts from the results")
	md := fs.String("md", "BENCHMARKS.md", "report to regenerate with -report")
	fs.Parse(args)
	p, err := f.params()
	if err != nil {
		return err
	}
	prog := run.NewProgress(os.Stderr)
	var sys []systems.System
	if len(f.external) == 0 {
		var cleanup func()
		sys, cleanup, err = buildSystems(p.Systems, &f, prog, false)
		defer cleanup()
		if err != nil {
			return err
		}
	}
	r := &run.Runner{Params: p, Systems: sys, Progress: prog, Dir: f.dir, Command: commandLine()}
	if err := f.applyExternal(r); err != nil {
		return err
	}
	res, err := r.Run(ctx)
	if err != nil {
		return err
	}
	fmt.Println()
	report.WriteTable(os.Stdout, res)
	if err := os.MkdirAll(filepath.Dir(f.out), 0o755); err != nil {
		return err
	}
	if err := res.WriteFile(f.out); err != nil {
		return err
	}
	fmt.Printf("results written to %s\n", f.out)
	if *withReport {
		return writeReport(res, f.out, *md)
	}
	return nil
}
