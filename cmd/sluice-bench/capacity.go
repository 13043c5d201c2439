package main

import (
	"flag"
	"os"

	"github.com/sluicehq/sluice/bench/capacity"
	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
)

func cmdCapacity(args []string) error {
	fs := flag.NewFlagSet("capacity", flag.ExitOnError)
	var in capacity.Input
	fs.IntVar(&in.Conns, "conns", 10000, "concurrent public connections")
	fs.IntVar(&in.Tunnels, "tunnels", 100, "registered tunnels")
	fs.Float64Var(&in.Mbps, "mbps", 1000, "aggregate traffic in megabits per second")
	fs.Float64Var(&in.Headroom, "headroom", 0.3, "fraction added on top of the computed need")
	fs.StringVar(&in.System, "system", plan.Sluice, "whose measured figures to use")
	from := fs.String("results", "bench/results.json", "results JSON to take the figures from")
	fs.Parse(args)
	res, err := results.Read(*from)
	if err != nil {
		return err
	}
	plan, err := capacity.Size(res, in)
	if err != nil {
		return err
	}
	plan.Print(os.Stdout, in)
	return nil
}
