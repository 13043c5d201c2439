package run

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/bench/load"
	"github.com/sluicehq/sluice/bench/systems"
)

// waitLive polls until a round trip through addr works; it returns how
// long after start that happened.
func waitLive(ctx context.Context, in *systems.Instance, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if err := in.Alive(); err != nil {
			return 0, err
		}
		if last = load.Probe(in.Addr, time.Second); last == nil {
			return time.Since(in.Started), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("no round trip through %s within %s (last error: %v); is the tunnel configured right? see the logs in the run directory", in.Addr, timeout, last)
}
