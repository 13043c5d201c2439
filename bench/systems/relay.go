package systems

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/bench/link"
	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/target"
)

// relaySystem is the harness's own one-process userspace relay: an
// unshaped link. It is the yardstick for what a plain read/write copy costs
// on the machine, and a separate-process stand-in tunnel for the harness's
// own tests.
type relaySystem struct{}

func (relaySystem) Name() string     { return plan.Relay }
func (relaySystem) Available() error { return nil }
func (relaySystem) Version() string {
	return "the harness's one-process Go relay, 32 KiB read/write copy"
}
func (relaySystem) HTTPRouting() bool { return true }
func (relaySystem) Start(_ context.Context, env Env, opts StartOptions) (*Instance, error) {
	in := &Instance{System: plan.Relay, Started: time.Now()}
	to := []string{env.TargetTCP}
	if opts.HTTP {
		to = append(to, env.TargetHTTP)
	}
	// The relay stands in for both ends of a tunnel, so a WAN link goes
	// between it and the target.
	if opts.Link != nil {
		var err error
		if to[0], err = in.linkTo(env, opts, env.TargetTCP); err != nil {
			return nil, err
		}
	}
	p, addrs, err := link.Start(env.Dir, "relay", link.Shape{}, to...)
	if err != nil {
		in.Stop()
		return nil, fmt.Errorf("relay: %w", err)
	}
	p.Edge = true
	in.Procs = append(in.Procs, p)
	in.Addr = addrs[0]
	if opts.HTTP {
		in.HTTPAddr, in.HTTPHost = addrs[1], target.HTTPHostName
	}
	return in, nil
}
