package systems

import (
	"context"
	"time"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/target"
)

// Direct returns the no-tunnel baseline.
func Direct() System { return directSystem{} }

// directSystem is no tunnel at all: the physical limit of this machine.
// With a link, the client reaches the target through it, so direct is also
// the limit of the emulated path.
type directSystem struct{}

func (directSystem) Name() string      { return plan.Direct }
func (directSystem) Available() error  { return nil }
func (directSystem) Version() string   { return "loopback TCP" }
func (directSystem) HTTPRouting() bool { return true }
func (directSystem) Start(_ context.Context, env Env, opts StartOptions) (*Instance, error) {
	in := &Instance{System: plan.Direct, Addr: env.TargetTCP, HTTPAddr: env.TargetHTTP, HTTPHost: target.HTTPHostName, Started: time.Now()}
	addr, err := in.linkTo(env, opts, env.TargetTCP)
	if err != nil {
		return nil, err
	}
	in.Addr = addr
	return in, nil
}
