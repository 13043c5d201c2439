// Command sluice-bench is sluice's benchmark harness: it measures sluice
// head to head with direct TCP, rathole and frp, writes a results JSON and
// BENCHMARKS.md, gates CI on regressions and sizes an edge from the numbers.
//
//	sluice-bench run      [-preset full|quick] [-systems ...] [-out results.json] [-report]
//	sluice-bench report   [-results bench/results.json]          regenerate BENCHMARKS.md and charts
//	sluice-bench gate     [-baseline bench/baseline.json]        CI regression gate (direct + sluice)
//	sluice-bench capacity -conns N -tunnels T -mbps X            edge size from measured figures
//	sluice-bench target   [-tcp ADDR] [-http ADDR]               the target service on its own (Docker)
//	sluice-bench load     -addr ADDR [-mode upload|...]           drive one load by hand (profiling)
//	sluice-bench link     -to ADDR [-shape delay=25ms,rate=100MB]  the WAN link on its own
//
// A file per subcommand: run.go, report.go, gate.go, capacity.go,
// target.go, load.go, link.go; flags.go holds the flags run and gate share.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluicehq/sluice/bench/run"
)

func main() {
	run.MaybeRunChild()
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = cmdRun(ctx, os.Args[2:])
	case "report":
		err = cmdReport(os.Args[2:])
	case "gate":
		err = cmdGate(ctx, os.Args[2:])
	case "capacity":
		err = cmdCapacity(os.Args[2:])
	case "target":
		err = cmdTarget(ctx, os.Args[2:])
	case "load":
		err = cmdLoad(os.Args[2:])
	case "link":
		err = cmdLink(ctx, os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "sluice-bench: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, errGateFailed) {
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "sluice-bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: sluice-bench <command> [flags]

commands:
  run        run the benchmark (presets: full = make bench, quick = make bench-quick)
  report     regenerate BENCHMARKS.md and the SVG charts from a results JSON
  gate       CI regression gate: quick scenarios for direct and sluice vs bench/baseline.json
  capacity   size an edge (RAM, cores) from the latest results
  target     run the target service on its own (used by docker-compose.bench.yml)
  load       drive one load against an address by hand (for profiling a tunnel)
  link       run the harness's WAN link by hand: -listen ADDR -to ADDR -shape delay=25ms,rate=100MB

Run "sluice-bench <command> -h" for a command's flags.
`)
}
