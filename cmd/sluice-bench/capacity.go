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
	fleet := fs.Bool("fleet", false, "size a fleet of edges instead of one edge (needs the fleet scenario's figures)")
	fin := capacity.FleetInput{}
	fs.IntVar(&fin.Agents, "agents", 100, "agents (with -fleet)")
	fs.IntVar(&fin.SessionsPerAgent, "sessions-per-agent", 2, "edges each agent keeps a session to (with -fleet)")
	fs.Float64Var(&fin.EdgeCores, "edge-cores", 2, "cores of one edge's machine (with -fleet)")
	fs.Float64Var(&fin.EdgeRAMMB, "edge-ram-mb", 2048, "RAM of one edge's machine in MB (with -fleet)")
	fs.Parse(args)
	res, err := results.Read(*from)
	if err != nil {
		return err
	}
	if *fleet {
		fin.Input = in
		fp, err := capacity.SizeFleet(res, fin)
		if err != nil {
			return err
		}
		fp.Print(os.Stdout, fin)
		return nil
	}
	plan, err := capacity.Size(res, in)
	if err != nil {
		return err
	}
	plan.Print(os.Stdout, in)
	return nil
}
