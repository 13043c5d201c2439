package run

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/bench/load"
	"github.com/sluicehq/sluice/bench/systems"
)

// waitLive polls until a round trip through the instance's tunnel works; it
// returns how long after start that happened.
func waitLive(ctx context.Context, in *systems.Instance, timeout time.Duration) (time.Duration, error) {
	if err := waitAddr(ctx, in, in.Addr, timeout); err != nil {
		return 0, err
	}
	return time.Since(in.Started), nil
}

// waitAddr polls until a round trip through addr, one of the instance's
// tunnels, works.
func waitAddr(ctx context.Context, in *systems.Instance, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if err := in.Alive(); err != nil {
			return err
		}
		if last = load.Probe(addr, time.Second); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return fmt.Errorf("no round trip through %s within %s (last error: %v); is the tunnel configured right? see the logs in the run directory", addr, timeout, last)
}
