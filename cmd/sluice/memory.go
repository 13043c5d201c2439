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
// only above its heap goal, and both the goal and the garbage of a burst
// stay until a collection runs: an edge that goes quiet after a burst
// allocates almost nothing, so the next collection is the runtime's forced
// one two minutes later (pooled buffers survive it once more), and the
// process keeps its peak meanwhile. So every trimInterval the edge looks at
// what it holds: when no collection ran during the interval (it is quiet)
// and it holds at least trimMinHeld not returned to the system, it collects
// and returns the free memory at once (debug.FreeOSMemory). That collection
// walks the small live heap left after a burst (milliseconds); a busy edge
// collects on its own and is left alone, and a quiet one is trimmed once,
// not again until a collection of its own has run.
const (
	trimInterval = 15 * time.Second
	// trimMinHeld is the memory held worth a collection to return.
	trimMinHeld = 64 << 20
)

// trimmer decides when to return memory, from the runtime's counters and
// the goroutines (each public connection has at least one): a trim during
// the tail of a burst returns little, and the rest becomes garbage that no
// collection finds while the edge is quiet, so a quiet edge is trimmed
// again once its goroutines have halved since the last trim.
type trimmer struct {
	lastCycles uint64 // collections counted at the previous look
	trimmedAt  uint64 // the count right after our last trim
	trimmedG   uint64 // goroutines at our last trim
}

// due reports whether to trim, given the collections counted so far, the
// bytes held and not returned to the system, and the goroutines.
func (t *trimmer) due(cycles, held, goroutines uint64) bool {
	quiet := cycles == t.lastCycles
	t.lastCycles = cycles
	fresh := cycles != t.trimmedAt || 2*goroutines <= t.trimmedG
	return quiet && fresh && held >= trimMinHeld
}

// trimmed records the collections counted after a trim and the goroutines.
func (t *trimmer) trimmed(cycles, goroutines uint64) {
	t.lastCycles, t.trimmedAt, t.trimmedG = cycles, cycles, goroutines
}

// returnIdleMemory runs until ctx ends, returning memory to the system
// when the edge has gone quiet holding a lot of it (see trimmer).
func returnIdleMemory(ctx context.Context, log *slog.Logger) {
	samples := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/sched/goroutines:goroutines"},
	}
	read := func() (cycles, held, goroutines uint64, ok bool) {
		metrics.Read(samples)
		for _, s := range samples {
			if s.Value.Kind() != metrics.KindUint64 {
				return 0, 0, 0, false // a runtime without these: leave it to the scavenger
			}
		}
		return samples[0].Value.Uint64(), samples[1].Value.Uint64() - samples[2].Value.Uint64(), samples[3].Value.Uint64(), true
	}
	var tr trimmer
	tr.lastCycles, _, _, _ = read()
	t := time.NewTicker(trimInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cycles, held, g, ok := read()
		if !ok {
			return
		}
		if tr.due(cycles, held, g) {
			debug.FreeOSMemory()
			after, left, _, _ := read()
			tr.trimmed(after, g)
			log.Debug("returned memory to the system after a peak", "held_MiB", held>>20, "now_MiB", left>>20)
		}
	}
}
