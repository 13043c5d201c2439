// Package run drives a benchmark: it starts the target service, then runs
// the selected scenarios against the selected systems, interleaved round
// by round (A B C D, A B C D, ...) so slow drift on a noisy machine spreads
// over all of them, and records every sample in a results.Results.
//
// Fairness rules the code keeps: every system sees the same target process,
// the same load generator code, the same sizes and the same loopback (or
// the same emulated WAN link); every figure is reported as the median over
// rounds with its spread and as a ratio to direct.
package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/sluicehq/sluice/bench/load"
	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/proc"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/systems"
	"github.com/sluicehq/sluice/bench/target"
)

// Runner runs the selected scenarios against the selected systems,
// interleaved round by round.
type Runner struct {
	Params   plan.Params
	Systems  []systems.System // in run order; direct first so ratios have a base
	Progress *Progress
	// Dir is the scratch directory for configs and logs; a temporary one
	// is made (and removed when the run is clean) when empty.
	Dir string
	// Command is recorded in the results so others can reproduce them.
	Command string
	// TargetTCP and TargetHTTP, when set, name a target service already
	// running (in a container); otherwise the runner starts its own.
	TargetTCP, TargetHTTP string
	// Source is recorded in the results: "processes" (default) or "docker".
	Source string
	// Engine is recorded in the results: the container engine, for docker.
	Engine string
	// Commit, when set, is recorded instead of git's HEAD: a run inside a
	// container has no repository to ask.
	Commit string

	res    *results.Results
	target *target.Child
	failed bool
}

// Run executes the benchmark and returns its results. Errors inside a
// scenario are recorded as notes and the run goes on; only set-up failures
// (no target, nothing to measure) return an error.
func (r *Runner) Run(ctx context.Context) (*results.Results, error) {
	if err := r.Params.Validate(); err != nil {
		return nil, err
	}
	if r.Progress == nil {
		r.Progress = NewProgress(io.Discard)
	}
	keepDir := r.Dir != ""
	if keepDir {
		if err := os.MkdirAll(r.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("make scratch directory %s: %w", r.Dir, err)
		}
	}
	if r.Dir == "" {
		d, err := os.MkdirTemp("", "sluice-bench-")
		if err != nil {
			return nil, fmt.Errorf("make scratch directory: %w", err)
		}
		r.Dir = d
	}
	src := r.Source
	if src == "" {
		src = "processes"
	}
	r.res = &results.Results{Schema: results.SchemaVersion, Command: r.Command, Preset: r.Params.Preset, Source: src, Engine: r.Engine, Started: time.Now().UTC()}
	limit, lerr := proc.RaiseNoFile()
	if lerr != nil {
		r.note("could not raise the open-file limit (%v); it stays at %d", lerr, limit)
	}
	r.res.Machine = results.CollectMachine()
	if r.Commit != "" {
		r.res.Machine.Commit = r.Commit
	}
	r.capMemoryConns(limit)
	r.res.Params = r.Params

	if r.TargetTCP != "" {
		r.target = &target.Child{TCPAddr: r.TargetTCP, HTTPAddr: r.TargetHTTP}
	} else {
		var err error
		r.target, err = target.StartChild(r.Dir)
		if err != nil {
			return nil, err
		}
		defer r.target.Stop()
	}

	var live []systems.System
	for _, s := range r.Systems {
		if aerr := s.Available(); aerr != nil {
			r.Progress.Printf("skip %s: %v", s.Name(), aerr)
			r.res.Systems = append(r.res.Systems, results.SystemResult{Name: s.Name(), Skipped: aerr.Error()})
			continue
		}
		v := s.Version()
		r.res.Systems = append(r.res.Systems, results.SystemResult{Name: s.Name(), Version: v})
		live = append(live, s)
	}
	if len(live) == 0 {
		return nil, errors.New("no system can run: every one was skipped (see the lines above)")
	}
	for round := 1; round <= r.Params.Rounds; round++ {
		for _, s := range live {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r.runRound(ctx, s, round)
		}
	}
	r.res.Finished = time.Now().UTC()
	r.res.Machine.LoadAvgEnd = results.LoadAvg()
	if c := float64(r.res.Machine.Cores); c > 0 && (r.res.Machine.LoadAvgStart > c || r.res.Machine.LoadAvgEnd > c) {
		r.note("the machine was busy with other work (load average %.1f at the start, %.1f at the end, %d cores): absolute figures are depressed; ratios between systems, measured interleaved, suffer less", r.res.Machine.LoadAvgStart, r.res.Machine.LoadAvgEnd, r.res.Machine.Cores)
	}
	r.res.Finalize()
	if r.failed || keepDir {
		r.Progress.Printf("logs and configs kept in %s", r.Dir)
	} else {
		os.RemoveAll(r.Dir)
	}
	return r.res, nil
}

// capMemoryConns lowers held-connection counts that the open-file limit
// cannot carry: the load generator holds one descriptor per connection.
func (r *Runner) capMemoryConns(limit uint64) {
	if !r.Params.Has(plan.Memory) || limit == 0 {
		return
	}
	const reserve = 200 // descriptors for everything else in the process
	for i, n := range r.Params.MemoryConns {
		if uint64(n)+reserve > limit {
			capped := int(limit) - reserve
			r.note("open-file limit %d caps the %d-connection memory run at %d connections (raise the hard limit with `ulimit -Hn` to run it in full)", limit, n, capped)
			r.Params.MemoryConns[i] = capped
			r.Params.ReducedForOpenFile = fmt.Sprintf("%d -> %d (nofile %d)", n, capped, limit)
		}
	}
}

func (r *Runner) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for _, n := range r.res.Notes {
		if n == msg {
			return // an explanation repeated every round says nothing new
		}
	}
	r.res.Notes = append(r.res.Notes, msg)
	r.Progress.Printf("note: %s", msg)
}

func (r *Runner) add(id, system string, v float64) {
	r.res.Add(id, system, v)
}

func (r *Runner) env(system string, round int) systems.Env {
	dir := filepath.Join(r.Dir, fmt.Sprintf("r%d-%s", round, system))
	os.MkdirAll(dir, 0o755)
	return systems.Env{Dir: dir, TargetTCP: r.target.TCPAddr, TargetHTTP: r.target.HTTPAddr}
}

// fail records a scenario failure; the run goes on with the next one.
func (r *Runner) fail(label string, err error) {
	r.failed = true
	r.res.Failures++
	r.Progress.End("FAILED")
	r.note("%s failed: %v", label, err)
}

func (r *Runner) runRound(ctx context.Context, s systems.System, round int) {
	name := s.Name()
	tag := fmt.Sprintf("round %d/%d %-10s", round, r.Params.Rounds, name)
	p := paramsFor(r.Params, s)
	needMain := p.Has(plan.Startup) || p.Has(plan.Throughput) || p.Has(plan.Parallel) || p.Has(plan.Latency) || p.Has(plan.Loaded) || p.Has(plan.ConnRate) || p.Has(plan.HTTP)
	if needMain {
		r.runMain(ctx, p, s, round, tag)
	}
	_, external := s.(*systems.ExternalSystem)
	if p.Has(plan.Memory) && name != plan.Direct {
		if ext, ok := s.(*systems.ExternalSystem); ok && !ext.Cgroups.Set() {
			if round == 1 {
				r.note("%s: no cgroup given, so no memory figures (pass cgroup=... in -external)", name)
			}
		} else {
			for _, n := range p.MemoryConns {
				if ctx.Err() != nil {
					return
				}
				r.runMemory(ctx, s, round, tag, n)
			}
			if p.MemoryAgents > 0 && ctx.Err() == nil {
				if external || name == plan.Relay {
					if round == 1 {
						r.note("%s: the harness cannot start further agents for it, so no memory per agent session", name)
					}
				} else {
					r.runAgents(ctx, s, round, tag, p.MemoryAgents)
				}
			}
		}
	}
	if p.Has(plan.WAN) {
		if name == plan.Relay {
			// The relay is a yardstick for a copy on loopback; across the
			// WAN it would only repeat direct's figures.
			return
		}
		if external {
			if round == 1 {
				r.note("%s runs elsewhere, so the harness cannot put its link in front of the edge: no WAN figures", name)
			}
			return
		}
		for _, l := range p.WANLinks {
			if ctx.Err() != nil {
				return
			}
			r.runWAN(ctx, s, round, tag, l)
		}
	}
}

// paramsFor is the run's parameters with the scenarios a system is not
// measured in taken out.
func paramsFor(p plan.Params, s systems.System) plan.Params {
	l, ok := s.(systems.ScenarioLimiter)
	if !ok || l.OnlyScenarios() == nil {
		return p
	}
	var keep []string
	for _, scen := range p.Scenarios {
		if slices.Contains(l.OnlyScenarios(), scen) {
			keep = append(keep, scen)
		}
	}
	p.Scenarios = keep
	return p
}

func (r *Runner) runMain(ctx context.Context, p plan.Params, s systems.System, round int, tag string) {
	name := s.Name()
	httpWanted := p.Has(plan.HTTP) && s.HTTPRouting()
	r.Progress.Begin(tag+" start", 0, "")
	in, err := s.Start(ctx, r.env(name, round), systems.StartOptions{HTTP: httpWanted})
	if err != nil {
		r.fail(tag+" start", err)
		return
	}
	defer in.Stop()
	up, err := waitLive(ctx, in, time.Duration(p.StartupTimeoutSec*float64(time.Second)))
	if err != nil {
		r.fail(tag+" start", err)
		return
	}
	if name != plan.Direct && !in.External && p.Has(plan.Startup) {
		r.add(results.MStartup, name, float64(up.Microseconds())/1000)
		r.Progress.End(fmt.Sprintf("live after %.1f ms", float64(up.Microseconds())/1000))
	} else {
		r.Progress.End("live")
	}
	step := func(scen string, fn func() error) {
		if !p.Has(scen) || ctx.Err() != nil {
			return
		}
		if err := fn(); err != nil {
			r.fail(tag+" "+scen, err)
			return
		}
		if err := in.Alive(); err != nil {
			r.fail(tag+" "+scen, err)
		}
	}
	step(plan.Throughput, func() error { return r.throughput(in, tag) })
	step(plan.Parallel, func() error { return r.parallel(in, tag) })
	step(plan.Latency, func() error { return r.latency(in, tag) })
	step(plan.Loaded, func() error { return r.loaded(in, tag) })
	step(plan.ConnRate, func() error { return r.connRate(in, tag) })
	if httpWanted {
		step(plan.HTTP, func() error { return r.http(ctx, in, tag) })
	}
}

func (r *Runner) throughput(in *systems.Instance, tag string) error {
	size := int64(r.Params.ThroughputMiB) << 20
	cpu0, _ := in.CPU(false)
	edge0, _ := in.CPU(true)
	cs0, csErr := in.CtxSwitches()
	for _, upload := range []bool{true, false} {
		dir := "download"
		if upload {
			dir = "upload"
		}
		c := r.Progress.Begin(tag+" throughput "+dir, size, "B")
		d, err := load.Transfer(in.Addr, size, upload, c)
		if err != nil {
			return fmt.Errorf("%s of %d MiB through %s: %w", dir, r.Params.ThroughputMiB, in.Addr, err)
		}
		v := load.MBps(size, d)
		if upload {
			r.add(results.MUpload, in.System, v)
		} else {
			r.add(results.MDownload, in.System, v)
		}
		r.Progress.End(fmt.Sprintf("%.0f MB/s", v))
	}
	if len(in.Procs) > 0 || in.Cgroups.Set() {
		gib := float64(2*size) / (1 << 30)
		if cpu1, err := in.CPU(false); err == nil {
			r.add(results.MCPUTotal, in.System, float64((cpu1-cpu0).Milliseconds())/gib)
		}
		if edge1, err := in.CPU(true); err == nil {
			r.add(results.MCPUEdge, in.System, float64((edge1-edge0).Milliseconds())/gib)
		}
	}
	if cs1, err := in.CtxSwitches(); err == nil && csErr == nil {
		r.add(results.MCtxSw, in.System, float64(cs1-cs0)/float64(2*r.Params.ThroughputMiB))
	}
	return nil
}

func (r *Runner) parallel(in *systems.Instance, tag string) error {
	p := r.Params
	size := int64(p.ParallelMiB) << 20
	for _, upload := range []bool{true, false} {
		dir := "download"
		id := results.MParDownload
		if upload {
			dir, id = "upload", results.MParUpload
		}
		c := r.Progress.Begin(fmt.Sprintf("%s parallel %dx %s", tag, p.ParallelConns, dir), size*int64(p.ParallelConns), "B")
		v, err := load.Parallel(in.Addr, p.ParallelConns, size, upload, c)
		if err != nil {
			return fmt.Errorf("parallel %s (%d x %d MiB): %w", dir, p.ParallelConns, p.ParallelMiB, err)
		}
		r.add(id, in.System, v)
		r.Progress.End(fmt.Sprintf("%.0f MB/s aggregate", v))
	}
	return nil
}

func (r *Runner) addPercentiles(h *hdrhistogram.Histogram, system string, p50, p90, p99, p999, max string) {
	r.add(p50, system, float64(h.ValueAtQuantile(50)))
	if p90 != "" {
		r.add(p90, system, float64(h.ValueAtQuantile(90)))
	}
	r.add(p99, system, float64(h.ValueAtQuantile(99)))
	r.add(p999, system, float64(h.ValueAtQuantile(99.9)))
	if max != "" {
		r.add(max, system, float64(h.Max()))
	}
}

func (r *Runner) latency(in *systems.Instance, tag string) error {
	p := r.Params
	c := r.Progress.Begin(tag+" latency 64 B", int64(p.LatencyRounds), "rounds")
	h, err := load.Latency(in.Addr, p.LatencyWarmup, p.LatencyRounds, secs(p.LatencyMaxSec), c)
	if err != nil {
		return err
	}
	r.addPercentiles(h, in.System, results.MLatP50, results.MLatP90, results.MLatP99, results.MLatP999, results.MLatMax)
	r.Progress.End(load.PctLine(h))
	return nil
}

func (r *Runner) loaded(in *systems.Instance, tag string) error {
	p := r.Params
	c := r.Progress.Begin(fmt.Sprintf("%s latency + %d bulk", tag, p.LoadedStreams), int64(p.LoadedRounds), "rounds")
	h, bulk, err := load.Loaded(in.Addr, p.LoadedStreams, p.LoadedWarmup, p.LoadedRounds, 200*time.Millisecond, secs(p.LoadedMaxSec), c)
	if err != nil {
		return err
	}
	r.addPercentiles(h, in.System, results.MLoadP50, results.MLoadP90, results.MLoadP99, results.MLoadP999, results.MLoadMax)
	r.add(results.MLoadBulk, in.System, bulk)
	r.add(results.MLoadCount, in.System, float64(h.TotalCount()))
	r.Progress.End(fmt.Sprintf("%s; bulk %.0f MB/s", load.PctLine(h), bulk))
	return nil
}

func (r *Runner) connRate(in *systems.Instance, tag string) error {
	p := r.Params
	c := r.Progress.Begin(tag+" connection rate", 0, "connections")
	v, failed, err := load.ConnRate(in.Addr, p.ConnRateWorkers, secs(p.ConnRateSec), c)
	if err != nil {
		return err
	}
	r.add(results.MConnRate, in.System, v)
	extra := ""
	if failed > 0 {
		extra = fmt.Sprintf(", %d failed", failed)
		r.note("%s connection rate: %d connections failed", tag, failed)
	}
	r.Progress.End(fmt.Sprintf("%.0f conn/s%s", v, extra))
	return nil
}

func (r *Runner) http(ctx context.Context, in *systems.Instance, tag string) error {
	p := r.Params
	tg := load.HTTPTarget{Addr: in.HTTPAddr, Host: in.HTTPHost, Auth: in.HTTPAuth}
	if _, port, err := net.SplitHostPort(in.HTTPAddr); err == nil {
		tg.Host = net.JoinHostPort(in.HTTPHost, port)
	}
	// The HTTP agent registers on its own; wait until a GET is routed.
	deadline := time.Now().Add(secs(p.StartupTimeoutSec))
	for {
		_, err := load.HTTP(ctx, tg, 1, 0, 50*time.Millisecond, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("HTTP route %s via %s never answered 200: %w", tg.Host, in.HTTPAddr, err)
		}
		if aerr := in.Alive(); aerr != nil {
			return aerr
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := r.Progress.Begin(fmt.Sprintf("%s HTTP %d conns", tag, p.HTTPConns), 0, "requests")
	edge0, cpuErr := in.CPU(true)
	res, err := load.HTTP(ctx, tg, p.HTTPConns, secs(p.HTTPWarmupSec), secs(p.HTTPSec), c)
	if err != nil {
		return err
	}
	h := res.Hist
	r.add(results.MHTTPRPS, in.System, res.RPS)
	r.addPercentiles(h, in.System, results.MHTTPP50, "", results.MHTTPP99, results.MHTTPP999, "")
	cpuText := ""
	if edge1, err := in.CPU(true); err == nil && cpuErr == nil && res.Done > 0 && (len(in.Procs) > 0 || in.Cgroups.Set()) {
		us := float64((edge1 - edge0).Microseconds()) / float64(res.Done)
		r.add(results.MHTTPEdgeCPU, in.System, us)
		cpuText = fmt.Sprintf(", edge CPU %.1f µs/req", us)
	}
	if res.Failed > 0 {
		r.note("%s HTTP: %d requests failed", tag, res.Failed)
	}
	r.Progress.End(fmt.Sprintf("%.0f req/s, P50 %d µs, P99 %d µs%s", res.RPS, h.ValueAtQuantile(50), h.ValueAtQuantile(99), cpuText))
	return nil
}

// runMemory starts a fresh instance (so earlier scenarios' buffers do not
// count), measures its idle RSS, holds n live connections and measures
// again.
func (r *Runner) runMemory(ctx context.Context, s systems.System, round int, tag string, n int) {
	p, name := r.Params, s.Name()
	label := fmt.Sprintf("%s memory %d conns", tag, n)
	c := r.Progress.Begin(label, int64(n), "connections")
	in, err := s.Start(ctx, r.env(name, round), systems.StartOptions{EdgeBase: true})
	if err != nil {
		r.fail(label, err)
		return
	}
	defer in.Stop()
	if _, err := waitLive(ctx, in, secs(p.StartupTimeoutSec)); err != nil {
		r.fail(label, err)
		return
	}
	// Let the probe's connection finish on every side before the idle
	// reading, so idle means idle.
	time.Sleep(300 * time.Millisecond)
	idle, err := in.RSSKB(false)
	if err != nil {
		r.fail(label, err)
		return
	}
	idleEdge, edgeErr := in.RSSKB(true)
	idleRes, resErr := in.EdgeResident()
	held := load.Hold(in.Addr, n, p.MemoryWorkers, c)
	defer held.Close()
	time.Sleep(300 * time.Millisecond)
	if err := in.Alive(); err != nil {
		r.fail(label, err)
		return
	}
	busy, err := in.RSSKB(false)
	if err != nil {
		r.fail(label, err)
		return
	}
	busyEdge, edgeErr2 := in.RSSKB(true)
	ok := len(held.Conns)
	r.add(results.MemSuccess(n), name, 100*float64(ok)/float64(n))
	if held.Failed > 0 {
		r.note("%s: %d of %d connections failed (first error: %v)", label, held.Failed, n, held.FirstErr)
		if lim := proc.NoFile(); name == plan.Relay && uint64(2*n+20) > lim {
			r.note("the relay holds both sides of every connection in one process (2 descriptors each), so the open-file limit %d caps it just short of %d connections", lim, n)
		}
	}
	if ok == 0 {
		r.fail(label, fmt.Errorf("no connection could be held: %v", held.FirstErr))
		return
	}
	per := float64(busy-idle) / float64(ok)
	perEdge := float64(busyEdge-idleEdge) / float64(ok)
	r.add(results.MemPerConn(n), name, per)
	if edgeErr == nil && edgeErr2 == nil {
		r.add(results.MemEdgePerConn(n), name, perEdge)
	}
	if n == p.MemoryConns[0] {
		r.add(results.MMemIdle, name, float64(idle))
		if in.EdgeBaseKB > 0 {
			r.add(results.MMemEdgeBase, name, float64(in.EdgeBaseKB))
			r.add(results.MMemTunnel, name, float64(idleEdge-in.EdgeBaseKB))
			if resErr == nil && in.EdgeBaseAnonKB > 0 {
				r.add(results.MMemTunnelAnon, name, float64(idleRes.Anon-in.EdgeBaseAnonKB))
			}
		}
	}
	r.Progress.End(fmt.Sprintf("%.1f KB/conn (edge %.1f), %d/%d live, idle %d KB", per, perEdge, ok, n, idle))
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
