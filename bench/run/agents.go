package run

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/systems"
)

// agentSettle is how long the edge is left alone before each reading, so
// the sessions' start-up work (handshakes, registrations) has finished.
const agentSettle = time.Second

// runAgents measures what one more idle agent session costs the edge: a
// fresh instance with its first agent, then n further agents, each a process
// of its own with one TCP tunnel and one round trip through it; the edge's
// RSS growth divided by n. The first agent's growth (memory.tunnel_kb)
// carries the binary's code that sessions run for the first time, paged in
// once per process; the further agents' growth is what an edge pays per
// session as agents add up, split into anonymous memory (heap, stacks, the
// runtime's metadata) and file-backed pages.
func (r *Runner) runAgents(ctx context.Context, s systems.System, round int, tag string, n int) {
	p, name := r.Params, s.Name()
	label := fmt.Sprintf("%s memory %d agents", tag, n)
	c := r.Progress.Begin(label, int64(n), "agents")
	env := r.env(name, round)
	// A directory of its own: the edge's state (leases) from the held
	// connections' instance must not be this edge's.
	env.Dir = filepath.Join(env.Dir, "agents")
	if err := os.MkdirAll(env.Dir, 0o755); err != nil {
		r.fail(label, err)
		return
	}
	in, err := s.Start(ctx, env, systems.StartOptions{Agents: n})
	if err != nil {
		r.fail(label, err)
		return
	}
	defer in.Stop()
	timeout := secs(p.StartupTimeoutSec)
	if err := waitAddr(ctx, in, in.Addr, timeout); err != nil {
		r.fail(label, err)
		return
	}
	time.Sleep(agentSettle)
	before, err := in.EdgeResident()
	if err != nil {
		r.fail(label, err)
		return
	}
	for i := 0; i < n; i++ {
		addr, err := in.AddAgent(ctx)
		if err == nil {
			err = waitAddr(ctx, in, addr, timeout)
		}
		if err != nil {
			r.fail(label, err)
			return
		}
		c.Add(1)
	}
	time.Sleep(agentSettle)
	if err := in.Alive(); err != nil {
		r.fail(label, err)
		return
	}
	after, err := in.EdgeResident()
	if err != nil {
		r.fail(label, err)
		return
	}
	per := func(a, b int64) float64 { return float64(b-a) / float64(n) }
	r.add(results.MMemSession, name, per(before.RSS, after.RSS))
	r.add(results.MMemSessionAnon, name, per(before.Anon, after.Anon))
	r.add(results.MMemSessionFile, name, per(before.File, after.File))
	r.Progress.End(fmt.Sprintf("%.1f KB per further session (anonymous %.1f, file %.1f); edge %d KB with 1 agent, %d KB with %d", per(before.RSS, after.RSS), per(before.Anon, after.Anon), per(before.File, after.File), before.RSS, after.RSS, 1+n))
}
