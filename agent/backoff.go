package agent

import (
	"math/rand/v2"
	"time"
)

// Backoff computes reconnect delays: exponential with full jitter (each delay is
// uniform in [0, min(Max, Base*2^attempt)]), so a fleet of agents that lost the
// same edge does not come back in lockstep. Reset it after a session has been
// stable, so one blip does not leave the next outage waiting 30 s.
type Backoff struct {
	Base time.Duration // ceiling of the first delay; 250 ms by default
	Max  time.Duration // ceiling of every delay; 30 s by default

	attempt int
}

// Next returns the delay before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	base, maxDelay := b.Base, b.Max
	if base <= 0 {
		base = 250 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	ceiling := maxDelay
	// Stop doubling once past the cap; the shift would overflow long before
	// the attempt count does.
	if b.attempt < 30 {
		if c := base << b.attempt; c > 0 && c < maxDelay {
			ceiling = c
		}
	}
	b.attempt++
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// Reset starts the sequence over.
func (b *Backoff) Reset() { b.attempt = 0 }
