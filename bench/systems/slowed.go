package systems

import (
	"context"

	"github.com/sluicehq/sluice/bench/link"
)

// Slowed returns s with a shaped link always between its agent and edge
// (for direct: between client and target), under s's own name. It is the
// harness's slowed system: the gate's own test proves with it that the
// gate fails a tunnel that got slower, without a hook in the product.
func Slowed(s System, shape link.Shape) System { return slowed{s, shape} }

type slowed struct {
	System
	shape link.Shape
}

func (s slowed) Version() string {
	return s.System.Version() + "; slowed by a link: " + s.shape.String()
}

func (s slowed) Start(ctx context.Context, env Env, opts StartOptions) (*Instance, error) {
	if opts.Link == nil {
		sh := s.shape
		opts.Link = &sh
	}
	return s.System.Start(ctx, env, opts)
}
