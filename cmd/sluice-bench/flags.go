package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/run"
	"github.com/sluicehq/sluice/bench/systems"
)

// runFlags are the knobs shared by run and gate.
type runFlags struct {
	preset, systems, scenarios, memConns, sluiceBin, dir, out string
	rounds, tputMiB, parConns, parMiB, latRounds, wanMiB      int
	memAgents                                                 int
	wan                                                       string
	target, source, engine, commit                            string
	external                                                  listFlag
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func (f *runFlags) register(fs *flag.FlagSet, defPreset, defOut string) {
	fs.StringVar(&f.preset, "preset", defPreset, "full (make bench), quick (make bench-quick) or gate")
	fs.StringVar(&f.systems, "systems", "", "comma-separated systems (default: the preset's; known: "+plan.KnownSystems()+")")
	fs.StringVar(&f.scenarios, "scenarios", "", "comma-separated scenarios (default: all of the preset's; known: "+strings.Join(plan.All, ",")+")")
	fs.IntVar(&f.rounds, "rounds", 0, "interleaved rounds (default: the preset's)")
	fs.IntVar(&f.tputMiB, "throughput-mib", 0, "MiB per single-connection transfer (default: the preset's)")
	fs.IntVar(&f.parConns, "parallel-conns", 0, "connections in the parallel scenario")
	fs.IntVar(&f.parMiB, "parallel-mib", 0, "MiB per connection in the parallel scenario")
	fs.IntVar(&f.latRounds, "latency-rounds", 0, "measured ping-pong rounds")
	fs.StringVar(&f.memConns, "memory-conns", "", "comma-separated held-connection counts, e.g. 1000,10000")
	fs.IntVar(&f.memAgents, "memory-agents", -1, "further agents (one tunnel each) whose edge RSS growth gives the memory per idle agent session; 0 skips it (default: the preset's)")
	fs.StringVar(&f.wan, "wan", "", "comma-separated WAN links, e.g. rtt50-100MB,rtt200-100MB,rtt50-uncapped (round trip in ms, rate cap per direction in MB/s; default: the preset's)")
	fs.IntVar(&f.wanMiB, "wan-mib", 0, "MiB per one-connection transfer across each WAN link (default: the preset's)")
	fs.StringVar(&f.sluiceBin, "sluice-bin", os.Getenv("SLUICE_BIN"), "sluice binary (default: $SLUICE_BIN, else built from this repository)")
	fs.StringVar(&f.dir, "dir", "", "scratch directory for configs and logs (default: a temporary one, removed after a clean run)")
	fs.StringVar(&f.out, "out", defOut, "results JSON to write")
	fs.Var(&f.external, "external", "a system already running elsewhere, e.g. in a container: name=host:port[,http=host:port][,cgroup=/sys/fs/cgroup/...] (repeatable; replaces -systems)")
	fs.StringVar(&f.target, "target", "", "a target service already running: tcp=host:port,http=host:port (default: start one)")
	fs.StringVar(&f.source, "source", "processes", "recorded in the results: processes or docker")
	fs.StringVar(&f.engine, "engine", "", "recorded in the results: the container engine the systems run in (docker)")
	fs.StringVar(&f.commit, "commit", "", "recorded in the results instead of git's HEAD (a run in a container has no repository)")
}

// applyExternal turns -external and -target into runner settings.
func (f *runFlags) applyExternal(r *run.Runner) error {
	r.Source = f.source
	r.Engine = f.engine
	r.Commit = f.commit
	if f.target != "" {
		for _, part := range splitList(f.target) {
			k, v, _ := strings.Cut(part, "=")
			switch k {
			case "tcp":
				r.TargetTCP = v
			case "http":
				r.TargetHTTP = v
			default:
				return fmt.Errorf("-target %q: want tcp=host:port,http=host:port", f.target)
			}
		}
		if r.TargetTCP == "" || r.TargetHTTP == "" {
			return fmt.Errorf("-target %q: both tcp= and http= are needed", f.target)
		}
	}
	if len(f.external) == 0 {
		return nil
	}
	r.Systems = []systems.System{systems.Direct()}
	r.Params.Systems = []string{plan.Direct}
	// The harness cannot put its link in front of an edge it did not
	// start, and direct alone across the link says nothing of a tunnel.
	var scen []string
	for _, s := range r.Params.Scenarios {
		if s != plan.WAN {
			scen = append(scen, s)
		}
	}
	r.Params.Scenarios = scen
	for _, spec := range f.external {
		e, err := systems.ParseExternal(spec)
		if err != nil {
			return err
		}
		r.Systems = append(r.Systems, e)
		r.Params.Systems = append(r.Params.Systems, e.Name())
	}
	return nil
}

func (f *runFlags) params() (plan.Params, error) {
	p, err := plan.Preset(f.preset)
	if err != nil {
		return p, err
	}
	if f.systems != "" {
		p.Systems = splitList(f.systems)
	}
	if f.scenarios != "" {
		p.Scenarios = splitList(f.scenarios)
	}
	setIf := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	setIf(&p.Rounds, f.rounds)
	setIf(&p.ThroughputMiB, f.tputMiB)
	setIf(&p.ParallelConns, f.parConns)
	setIf(&p.ParallelMiB, f.parMiB)
	setIf(&p.LatencyRounds, f.latRounds)
	setIf(&p.WANMiB, f.wanMiB)
	if f.memAgents >= 0 {
		p.MemoryAgents = f.memAgents
	}
	if f.wan != "" {
		p.WANLinks = nil
		for _, name := range splitList(f.wan) {
			l, ok := plan.ParseWANName(name)
			if !ok {
				return p, fmt.Errorf("-wan %q: %q is not a link; write rtt<ms>-<MB/s>MB or rtt<ms>-uncapped, e.g. rtt50-100MB", f.wan, name)
			}
			p.WANLinks = append(p.WANLinks, l)
		}
	}
	if f.memConns != "" {
		p.MemoryConns = nil
		for _, s := range splitList(f.memConns) {
			n, err := strconv.Atoi(s)
			if err != nil {
				return p, fmt.Errorf("-memory-conns %q: %q is not a number", f.memConns, s)
			}
			p.MemoryConns = append(p.MemoryConns, n)
		}
	}
	p.Systems = plan.OrderSystems(p.Systems)
	return p, p.Validate()
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// commandLine is what the results record as "the exact command". make
// sets SLUICE_BENCH_VIA so the record names the target too.
func commandLine() string {
	c := "go run ./cmd/sluice-bench " + strings.Join(os.Args[1:], " ")
	if via := os.Getenv("SLUICE_BENCH_VIA"); via != "" {
		return via + "   # = " + c
	}
	return c
}
