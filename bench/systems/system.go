// Package systems starts the things the harness measures: sluice (plain and
// with TLS), rathole, frp, the no-tunnel baseline ("direct"), the harness's
// own relay, and systems someone else started (containers). Each runs as
// separate OS processes, exactly as users start them, with configurations
// the harness writes.
package systems

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/bench/link"
	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/proc"
)

// Env is what every system is started against.
type Env struct {
	Dir        string // scratch directory for configs and logs
	TargetTCP  string // the target's TCP address
	TargetHTTP string // the target's HTTP address
}

// StartOptions chooses what an instance carries.
type StartOptions struct {
	HTTP bool // also route HTTP by Host to the target's HTTP port
	// EdgeBase records the edge's memory before the agent starts (it
	// waits a moment, so startup is not timed on such instances).
	EdgeBase bool
	// Link, when set, puts the harness's link with this shape between the
	// agent and the edge (for direct: between the client and the target),
	// so the tunnel's session crosses an emulated WAN.
	Link *link.Shape
	// Agents is how many further agents Instance.AddAgent will start; a
	// system whose edge must list every tunnel in its configuration
	// (rathole) lists that many more.
	Agents int
}

// System is something the harness can measure.
type System interface {
	Name() string
	// Available returns nil when the system can run here, otherwise an
	// error whose text tells a user how to install it.
	Available() error
	Version() string
	// Start launches the system's processes. It returns once they are
	// started; the runner decides when the tunnel is live by a round trip.
	Start(ctx context.Context, env Env, opts StartOptions) (*Instance, error)
	// HTTPRouting reports whether the system can route HTTP by Host.
	HTTPRouting() bool
}

// ScenarioLimiter is implemented by a system that is measured in some
// scenarios only: the runner skips the others for it.
type ScenarioLimiter interface {
	OnlyScenarios() []string
}

// New returns the named system. sluiceBin is used only by sluice and
// sluice-tls.
func New(name, sluiceBin string) (System, error) {
	switch name {
	case plan.Direct:
		return Direct(), nil
	case plan.Sluice:
		return Sluice(sluiceBin, nil), nil
	case plan.SluiceTLS:
		return SluiceTLS(sluiceBin, nil), nil
	case plan.SluiceInspect:
		return SluiceInspect(sluiceBin, nil), nil
	case plan.SluicePolicy:
		return SluicePolicy(sluiceBin, nil), nil
	case plan.Rathole:
		return &ratholeSystem{bin: lookBin("RATHOLE_BIN", "rathole")}, nil
	case plan.FRP:
		return &frpSystem{frps: lookBin("FRPS_BIN", "frps"), frpc: lookBin("FRPC_BIN", "frpc")}, nil
	case plan.Relay:
		return relaySystem{}, nil
	}
	return nil, fmt.Errorf("unknown system %q (known: %s)", name, plan.KnownSystems())
}

// Instance is one running copy of a system.
type Instance struct {
	System   string
	Addr     string // public TCP address that forwards to the target
	HTTPAddr string // where HTTP clients connect; "" when not routed
	HTTPHost string // Host header that selects the target
	// HTTPAuth is "user:password" that HTTP clients must send (basic
	// auth), "" when the tunnel asks for none.
	HTTPAuth string
	Procs    []*proc.Proc
	// Link is the harness's link in front of the edge (StartOptions.Link);
	// its CPU and memory are not the system's, so it is not in Procs.
	Link    *proc.Proc
	Started time.Time // when the first process was started
	// EdgeBaseKB is the edge's RSS once it listens but before any agent
	// connected: the fixed cost of an edge, before tunnels and connections.
	EdgeBaseKB int64
	// EdgeBaseAnonKB is the anonymous part of EdgeBaseKB (not the
	// binary's pages); 0 where memory comes from cgroups.
	EdgeBaseAnonKB int64
	// External instances were started by someone else (containers): they
	// are not stopped, have no startup time, and, when Cgroups is set, their
	// memory and CPU come from those cgroups.
	External bool
	Cgroups  proc.Cgroups

	// addAgent, set by the systems that can, starts agent number i (from
	// 1) with one TCP tunnel of its own and returns its public address.
	addAgent func(ctx context.Context, i int) (string, error)
	agents   int
}

// AddAgent starts one more agent process, connected to the instance's edge
// with one TCP tunnel of its own to the target, as another user's machine
// would, and returns that tunnel's public address. The runner uses it to
// measure what each further agent session costs the edge. The agent is
// stopped with the instance.
func (in *Instance) AddAgent(ctx context.Context) (string, error) {
	if in.addAgent == nil {
		return "", fmt.Errorf("%s: the harness cannot add agents to this system", in.System)
	}
	in.agents++
	addr, err := in.addAgent(ctx, in.agents)
	if err != nil {
		return "", fmt.Errorf("%s: agent %d: %w", in.System, in.agents, err)
	}
	return addr, nil
}

// EdgeResident sums the resident memory of the instance's edge processes,
// split by backing; cgroups (External instances) give no such split.
func (in *Instance) EdgeResident() (proc.Resident, error) {
	if in.Cgroups.Set() {
		return proc.Resident{}, fmt.Errorf("%s: cgroups do not split memory by backing", in.System)
	}
	var sum proc.Resident
	for _, p := range in.Procs {
		if !p.Edge {
			continue
		}
		r, err := proc.ResidentKB(p.PID())
		if err != nil {
			return proc.Resident{}, err
		}
		sum.RSS += r.RSS
		sum.Anon += r.Anon
		sum.File += r.File
		sum.Shmem += r.Shmem
	}
	return sum, nil
}

// markEdgeBase records EdgeBaseKB; call it when the edge listens and no
// agent has been started yet.
func (in *Instance) markEdgeBase() {
	// A moment for the runtime to finish its start-up allocations.
	time.Sleep(50 * time.Millisecond)
	if kb, err := in.RSSKB(true); err == nil {
		in.EdgeBaseKB = kb
	}
	if res, err := in.EdgeResident(); err == nil {
		in.EdgeBaseAnonKB = res.Anon
	}
}

// Stop ends every process of the instance.
func (in *Instance) Stop() {
	for i := len(in.Procs) - 1; i >= 0; i-- {
		in.Procs[i].Stop()
	}
	if in.Link != nil {
		in.Link.Stop()
	}
}

// Alive returns an error naming the first process that has exited, with
// the end of its log, so a crashed tunnel is reported as such and not as a
// slow one.
func (in *Instance) Alive() error {
	procs := in.Procs
	if in.Link != nil {
		procs = append(procs[:len(procs):len(procs)], in.Link)
	}
	for _, p := range procs {
		if done, err := p.Exited(); done {
			return fmt.Errorf("%s exited (%v); last log lines:\n%s", p.Name, err, p.LogTail(8))
		}
	}
	return nil
}

// RSSKB sums the resident memory of the instance's processes (edge only
// when edgeOnly).
func (in *Instance) RSSKB(edgeOnly bool) (int64, error) {
	if in.Cgroups.Set() {
		kb, err := in.Cgroups.MemKB(edgeOnly)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", in.System, err)
		}
		return kb, nil
	}
	var sum int64
	for _, p := range in.Procs {
		if edgeOnly && !p.Edge {
			continue
		}
		kb, err := proc.RSSKB(p.PID())
		if err != nil {
			return 0, err
		}
		sum += kb
	}
	return sum, nil
}

// CtxSwitches sums the context switches of the instance's processes so
// far; an error for instances without processes of their own.
func (in *Instance) CtxSwitches() (int64, error) {
	if len(in.Procs) == 0 {
		return 0, fmt.Errorf("%s has no processes of its own", in.System)
	}
	var sum int64
	for _, p := range in.Procs {
		n, err := proc.CtxSwitches(p.PID())
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// CPU sums the CPU time used so far by the instance's processes.
func (in *Instance) CPU(edgeOnly bool) (time.Duration, error) {
	if in.Cgroups.Set() {
		d, err := in.Cgroups.CPUTime(edgeOnly)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", in.System, err)
		}
		return d, nil
	}
	var sum time.Duration
	for _, p := range in.Procs {
		if edgeOnly && !p.Edge {
			continue
		}
		d, err := proc.CPUTime(p.PID())
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// startEdge starts a system's edge process, waits until it listens on ctrl
// (where agents connect), takes the edge's memory baseline when asked, and
// puts the link (opts.Link) in front of it. It returns the address agents
// dial; on an error the instance is stopped.
func (in *Instance) startEdge(ctx context.Context, env Env, opts StartOptions, label, bin string, args, envv []string, ctrl string) (string, error) {
	srv, err := proc.Start(label, true, env.Dir, bin, args, envv)
	if err != nil {
		return "", err
	}
	in.Procs = append(in.Procs, srv)
	if err := waitListening(ctx, ctrl, in.Procs); err != nil {
		in.Stop()
		return "", fmt.Errorf("%s: %w", label, err)
	}
	if opts.EdgeBase {
		in.markEdgeBase()
	}
	edge, err := in.linkTo(env, opts, ctrl)
	if err != nil {
		in.Stop()
		return "", err
	}
	return edge, nil
}

// linkTo starts the instance's link (opts.Link) in front of addr and
// returns the address to use instead; addr itself without a link.
func (in *Instance) linkTo(env Env, opts StartOptions, addr string) (string, error) {
	if opts.Link == nil {
		return addr, nil
	}
	p, addrs, err := link.Start(env.Dir, "link", *opts.Link, addr)
	if err != nil {
		return "", err
	}
	in.Link = p
	return addrs[0], nil
}
