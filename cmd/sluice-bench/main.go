// Command sluice-bench is sluice's benchmark harness: it measures sluice
// head to head with direct TCP, rathole and frp, writes a results JSON and
// BENCHMARKS.md, gates CI on regressions and sizes an edge from the numbers.
//
//	sluice-bench run      [-preset full|quick] [-systems ...] [-out results.json] [-report]
//	sluice-bench report   [-results bench/results.json]          regenerate BENCHMARKS.md and charts
//	sluice-bench gate     [-baseline bench/baseline.json]        CI regression gate (direct + sluice)
//	sluice-bench capacity -conns N -tunnels T -mbps X            edge size from measured figures
//	sluice-bench target   [-tcp ADDR] [-http ADDR]               the target service on its own (Docker)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/sluicehq/sluice/bench"
)

func main() {
	bench.MaybeRunChild()
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

Run "sluice-bench <command> -h" for a command's flags.
`)
}

// runFlags are the knobs shared by run and gate.
type runFlags struct {
	preset, systems, scenarios, memConns, sluiceBin, dir, out string
	rounds, tputMiB, parConns, parMiB, latRounds              int
	target, source, engine, commit                            string
	external                                                  listFlag
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func (f *runFlags) register(fs *flag.FlagSet, defPreset, defOut string) {
	fs.StringVar(&f.preset, "preset", defPreset, "full (make bench), quick (make bench-quick) or gate")
	fs.StringVar(&f.systems, "systems", "", "comma-separated systems (default: the preset's; known: direct,sluice,rathole,frp,relay)")
	fs.StringVar(&f.scenarios, "scenarios", "", "comma-separated scenarios (default: all of the preset's; known: "+strings.Join(bench.AllScenarios, ",")+")")
	fs.IntVar(&f.rounds, "rounds", 0, "interleaved rounds (default: the preset's)")
	fs.IntVar(&f.tputMiB, "throughput-mib", 0, "MiB per single-connection transfer (default: the preset's)")
	fs.IntVar(&f.parConns, "parallel-conns", 0, "connections in the parallel scenario")
	fs.IntVar(&f.parMiB, "parallel-mib", 0, "MiB per connection in the parallel scenario")
	fs.IntVar(&f.latRounds, "latency-rounds", 0, "measured ping-pong rounds")
	fs.StringVar(&f.memConns, "memory-conns", "", "comma-separated held-connection counts, e.g. 1000,10000")
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
func (f *runFlags) applyExternal(r *bench.Runner) error {
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
	r.Systems = []bench.System{bench.NewSystemDirect()}
	r.Params.Systems = []string{bench.SystemDirect}
	for _, spec := range f.external {
		e, err := bench.ParseExternal(spec)
		if err != nil {
			return err
		}
		r.Systems = append(r.Systems, e)
		r.Params.Systems = append(r.Params.Systems, e.Name())
	}
	return nil
}

func (f *runFlags) params() (bench.Params, error) {
	p, err := bench.PresetParams(f.preset)
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
	p.Systems = bench.OrderSystems(p.Systems)
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

// sluiceBinary returns the sluice binary to run: -sluice-bin / SLUICE_BIN,
// or one built now from this repository into dir.
func sluiceBinary(flagBin, dir string) (string, error) {
	if flagBin != "" {
		if _, err := os.Stat(flagBin); err != nil {
			return "", fmt.Errorf("sluice binary %s: %w", flagBin, err)
		}
		return flagBin, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "sluice")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/sluice")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build sluice (go build ./cmd/sluice in %s) failed: %v\n%s", root, err, strings.TrimSpace(string(msg)))
	}
	return out, nil
}

// moduleRoot finds the sluice repository from the working directory.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root (go env GOMOD): %w; run from the sluice repository or set SLUICE_BIN", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the sluice repository: run from it or set SLUICE_BIN")
	}
	data, err := os.ReadFile(mod)
	if err != nil || !strings.Contains(string(data), "module github.com/sluicehq/sluice\n") {
		return "", fmt.Errorf("%s is not sluice's go.mod: run from the sluice repository or set SLUICE_BIN", mod)
	}
	return filepath.Dir(mod), nil
}

// systems builds the System list, building sluice when it is wanted.
func systems(names []string, f *runFlags, prog *bench.Progress, sluiceRequired bool) ([]bench.System, func(), error) {
	cleanup := func() {}
	var bin string
	var binErr error
	for _, n := range names {
		if n != bench.SystemSluice {
			continue
		}
		dir, err := os.MkdirTemp("", "sluice-bench-bin-")
		if err != nil {
			return nil, cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		if f.sluiceBin == "" {
			prog.Printf("building sluice (go build ./cmd/sluice)")
		}
		bin, binErr = sluiceBinary(f.sluiceBin, dir)
		if binErr != nil {
			if sluiceRequired {
				return nil, cleanup, binErr
			}
			binErr = errors.New(firstLines(binErr.Error(), 4))
		}
	}
	var out []bench.System
	for _, n := range names {
		if n == bench.SystemSluice {
			out = append(out, bench.NewSluiceSystem(bin, binErr))
			continue
		}
		s, err := bench.NewSystem(n, bin)
		if err != nil {
			return nil, cleanup, err
		}
		out = append(out, s)
	}
	return out, cleanup, nil
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

func cmdRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var f runFlags
	f.register(fs, "full", "bench/results.json")
	report := fs.Bool("report", false, "also regenerate BENCHMARKS.md and bench/charts from the results")
	md := fs.String("md", "BENCHMARKS.md", "report to regenerate with -report")
	fs.Parse(args)
	p, err := f.params()
	if err != nil {
		return err
	}
	prog := bench.NewProgress(os.Stderr)
	var sys []bench.System
	if len(f.external) == 0 {
		var cleanup func()
		sys, cleanup, err = systems(p.Systems, &f, prog, false)
		defer cleanup()
		if err != nil {
			return err
		}
	}
	r := &bench.Runner{Params: p, Systems: sys, Progress: prog, Dir: f.dir, Command: commandLine()}
	if err := f.applyExternal(r); err != nil {
		return err
	}
	if d := os.Getenv(bench.InjectDelayEnv); d != "" {
		r.Params.SluiceInjectDelay = d
		prog.Printf("note: %s=%s is set: the tunnels run with an injected slowdown (test only)", bench.InjectDelayEnv, d)
	}
	res, err := r.Run(ctx)
	if err != nil {
		return err
	}
	fmt.Println()
	bench.WriteTable(os.Stdout, res)
	if err := os.MkdirAll(filepath.Dir(f.out), 0o755); err != nil {
		return err
	}
	if err := res.WriteFile(f.out); err != nil {
		return err
	}
	fmt.Printf("results written to %s\n", f.out)
	if *report {
		return writeReport(res, f.out, *md)
	}
	return nil
}

func writeReport(res *bench.Results, resultsPath, mdPath string) error {
	mdDir := filepath.Dir(mdPath)
	benchDir := filepath.Join(mdDir, "bench")
	prev, _ := os.ReadFile(mdPath)
	rel, err := filepath.Rel(mdDir, resultsPath)
	if err != nil {
		rel = resultsPath
	}
	text, err := bench.GenerateReport(bench.ReportInputs{
		Results:    res,
		ResultsRel: filepath.ToSlash(rel),
		ChartsDir:  filepath.Join(benchDir, "charts"),
		ChartsRel:  "bench/charts",
		MuxFile:    filepath.Join(benchDir, "mux-results.md"),
		NotesFile:  filepath.Join(benchDir, "notes.md"),
		Previous:   string(prev),
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(mdPath, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", mdPath, err)
	}
	fmt.Printf("%s and %s regenerated\n", mdPath, filepath.Join(benchDir, "charts"))
	return nil
}

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	results := fs.String("results", "bench/results.json", "results JSON to report")
	md := fs.String("md", "BENCHMARKS.md", "Markdown file to regenerate (charts go to bench/charts beside it)")
	table := fs.Bool("table", false, "print the terminal table instead")
	docker := fs.String("docker", "", "rewrite only BENCHMARKS.md's Docker section, from this docker run's results (make bench-docker: bench/out/docker.json)")
	var notes listFlag
	fs.Var(&notes, "note", "with -docker: a note to add to the docker run's results first (repeatable; make bench-docker adds what the engine saw, e.g. a container killed at its memory limit)")
	fs.Parse(args)
	if *docker != "" && !*table {
		return writeDockerSection(*docker, *results, *md, notes)
	}
	res, err := bench.ReadResults(*results)
	if err != nil {
		return err
	}
	if *table {
		bench.WriteTable(os.Stdout, res)
		return nil
	}
	return writeReport(res, *results, *md)
}

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
		res, err := bench.ReadResults(*from)
		if err != nil {
			return err
		}
		_, err = gate(res, *baseline, *write)
		return err
	}
	p, err := f.params()
	if err != nil {
		return err
	}
	prog := bench.NewProgress(os.Stderr)
	sys, cleanup, err := systems(p.Systems, &f, prog, true)
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
		r := &bench.Runner{Params: p, Systems: sys, Progress: prog, Dir: f.dir, Command: commandLine()}
		if d := os.Getenv(bench.InjectDelayEnv); d != "" {
			r.Params.SluiceInjectDelay = d
		}
		res, err := r.Run(ctx)
		if err != nil {
			return err
		}
		fmt.Println()
		bench.WriteTable(os.Stdout, res)
		if f.out != "" {
			if err := res.WriteFile(f.out); err != nil {
				return err
			}
		}
		var fails []bench.GateFailure
		fails, err = gate(res, *baseline, *write)
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

func gate(res *bench.Results, baselinePath string, write bool) ([]bench.GateFailure, error) {
	if write {
		b, err := bench.NewBaseline(res, bench.SystemSluice)
		if err != nil {
			return nil, err
		}
		if err := b.WriteFile(baselinePath); err != nil {
			return nil, err
		}
		fmt.Printf("baseline written to %s\n", baselinePath)
		return nil, nil
	}
	b, err := bench.ReadBaseline(baselinePath)
	if err != nil {
		return nil, err
	}
	fmt.Printf("\ngate: %s vs %s (measured %s)\n", b.System, baselinePath, b.Measured)
	fails, err := bench.CompareBaseline(os.Stdout, res, b)
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
func writeBaseline(ctx context.Context, p bench.Params, sys []bench.System, prog *bench.Progress, f *runFlags, path string, runs int) error {
	if runs < 1 {
		runs = 1
	}
	var bs []*bench.Baseline
	for i := 1; i <= runs; i++ {
		prog.Printf("baseline run %d of %d", i, runs)
		r := &bench.Runner{Params: p, Systems: sys, Progress: prog, Dir: f.dir, Command: commandLine()}
		res, err := r.Run(ctx)
		if err != nil {
			return err
		}
		b, err := bench.NewBaseline(res, bench.SystemSluice)
		if err != nil {
			return err
		}
		bs = append(bs, b)
	}
	b, err := bench.MedianBaseline(bs)
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
func gross(fails []bench.GateFailure) bool {
	for _, f := range fails {
		if f.Limit > 0 && (f.Measured > 2*f.Limit || f.Measured < f.Limit/2) {
			return true
		}
	}
	return false
}

func cmdCapacity(args []string) error {
	fs := flag.NewFlagSet("capacity", flag.ExitOnError)
	var in bench.CapacityInput
	fs.IntVar(&in.Conns, "conns", 10000, "concurrent public connections")
	fs.IntVar(&in.Tunnels, "tunnels", 100, "registered tunnels")
	fs.Float64Var(&in.Mbps, "mbps", 1000, "aggregate traffic in megabits per second")
	fs.Float64Var(&in.Headroom, "headroom", 0.3, "fraction added on top of the computed need")
	fs.StringVar(&in.System, "system", bench.SystemSluice, "whose measured figures to use")
	results := fs.String("results", "bench/results.json", "results JSON to take the figures from")
	fs.Parse(args)
	res, err := bench.ReadResults(*results)
	if err != nil {
		return err
	}
	plan, err := bench.PlanCapacity(res, in)
	if err != nil {
		return err
	}
	plan.Print(os.Stdout, in)
	return nil
}

func cmdTarget(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("target", flag.ExitOnError)
	tcp := fs.String("tcp", "0.0.0.0:5201", "TCP address of the byte-moving service")
	httpAddr := fs.String("http", "0.0.0.0:3000", "address of the HTTP service")
	fs.Parse(args)
	t, err := bench.StartTarget(*tcp, *httpAddr)
	if err != nil {
		return err
	}
	fmt.Printf("target: tcp %s, http %s\n", t.TCPAddr(), t.HTTPAddr())
	<-ctx.Done()
	return t.Close()
}

func cmdLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	addr := fs.String("addr", "", "address that reaches a target service (directly or through a tunnel)")
	mode := fs.String("mode", "upload", "upload, download, latency or http (50 keep-alive connections, Host bench.localhost)")
	mib := fs.Int("mib", 1024, "MiB to move (upload, download)")
	rounds := fs.Int("rounds", 10000, "round trips (latency); milliseconds measured (http)")
	fs.Parse(args)
	if *addr == "" {
		return errors.New("load: -addr is required (e.g. the tunnel's public port)")
	}
	out, err := bench.Load(*addr, *mode, *mib, *rounds)
	if err != nil {
		return err
	}
	fmt.Println(out)
	return nil
}
