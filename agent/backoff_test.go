package agent

import (
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	b := Backoff{}
	ceilings := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}
	for i, c := range ceilings {
		if d := b.Next(); d < 0 || d > c {
			t.Fatalf("attempt %d: delay %v outside [0, %v]", i, d, c)
		}
	}
	for i := 0; i < 100; i++ {
		if d := b.Next(); d < 0 || d > 30*time.Second {
			t.Fatalf("delay %v above the 30s cap", d)
		}
	}
	b.Reset()
	if d := b.Next(); d > 250*time.Millisecond {
		t.Fatalf("after Reset: delay %v, want at most 250ms", d)
	}
}

func TestBackoffJitters(t *testing.T) {
	b := Backoff{Base: time.Second, Max: time.Second}
	seen := map[time.Duration]bool{}
	for i := 0; i < 20; i++ {
		seen[b.Next()] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays in 20 draws: no jitter", len(seen))
	}
}
