package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// memoryLimit is --memory-limit: a soft limit on the memory the Go runtime
// holds (heap, stacks and its own), set with debug.SetMemoryLimit. Near it
// the collector runs more often and the scavenger hands freed pages back to
// the system, so a burst of load does not leave the process above it.
type memoryLimit struct {
	bytes int64 // 0: no limit
	given bool
}

var sizeUnits = map[string]int64{"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

// Set parses a size: a number of bytes, or one with a binary unit (KiB,
// MiB, GiB, TiB; K, KB, M, MB, G, GB, T and TB mean the same); 0 or "off"
// means no limit.
func (m *memoryLimit) Set(s string) error {
	m.given = true
	v := strings.ToLower(strings.TrimSpace(s))
	if v == "off" || v == "0" {
		m.bytes = 0
		return nil
	}
	num := strings.TrimRight(v, "kmgtib")
	unit := strings.TrimSuffix(strings.TrimSuffix(v[len(num):], "b"), "i")
	mult, ok := sizeUnits[unit]
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if !ok || err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return fmt.Errorf("%q is not a size: give bytes with a unit, such as 256MiB or 1GiB, or off", s)
	}
	b := n * float64(mult)
	if b > math.MaxInt64/2 {
		return fmt.Errorf("%q is too large for a memory limit", s)
	}
	if b < 32<<20 {
		return fmt.Errorf("%q is below 32MiB: the edge needs more than that to run, and the collector would run without pause", s)
	}
	m.bytes = int64(b)
	return nil
}

func (m *memoryLimit) String() string {
	if m == nil || m.bytes == 0 {
		return ""
	}
	return fmt.Sprintf("%dMiB", m.bytes>>20)
}

// apply sets the runtime's soft memory limit when the flag was given; left
// unset, GOMEMLIMIT (or no limit) stays in force.
func (m *memoryLimit) apply(log *slog.Logger) {
	if !m.given {
		return
	}
	if m.bytes == 0 {
		debug.SetMemoryLimit(math.MaxInt64)
		return
	}
	debug.SetMemoryLimit(m.bytes)
	log.Info("memory limit", "limit", m.String())
}

// Giving memory back after a peak. The runtime returns freed heap pages
// only above its heap goal, and that goal falls only when a collection
// runs: an edge that goes quiet after a burst allocates almost nothing, so
// the next collection is the runtime's forced one two minutes later, and
// pooled buffers survive it once more. Meanwhile the process keeps its
// peak. So the edge checks every trimInterval, and when the heap holds
// far more free memory than live (the load is gone), it collects and
// returns it at once (debug.FreeOSMemory). A collection of the small live
// heap left after a burst costs milliseconds; under steady load the
// condition rarely holds, and at most one such collection runs per
// interval.
const (
	trimInterval = 15 * time.Second
	// trimMinFree is the free heap worth a collection to return.
	trimMinFree = 32 << 20
)

// shouldTrim reports whether free heap bytes not yet returned to the
// system are worth a forced collection, given the live heap.
func shouldTrim(free, live uint64) bool {
	return free >= trimMinFree && free > 2*live
}

// returnIdleMemory runs until ctx ends, returning free heap to the system
// after a peak (see shouldTrim).
func returnIdleMemory(ctx context.Context, log *slog.Logger) {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}, {Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(trimInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		if samples[0].Value.Kind() != metrics.KindUint64 || samples[1].Value.Kind() != metrics.KindUint64 {
			return // a runtime without these metrics: leave it to the scavenger
		}
		free, live := samples[0].Value.Uint64(), samples[1].Value.Uint64()
		if shouldTrim(free, live) {
			debug.FreeOSMemory()
			log.Debug("returned free memory to the system after a peak", "free_MiB", free>>20, "live_MiB", live>>20)
		}
	}
}
