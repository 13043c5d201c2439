package server

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Admission: what the edge does with an agent connection before it has
// authenticated. The gate (gate.go) bounds how many connections may be in
// their handshake; wrong tokens are answered ever more slowly per source;
// repeated warnings about one source are summarised, so a flood cannot
// flood the log too.

// authFailures slows wrong tokens per source address.
type authFailures struct {
	mu sync.Mutex
	m  map[string]failRecord
}

type failRecord struct {
	n    int
	last time.Time
}

// failMemory is how long a source's failures count against it.
const failMemory = time.Minute

// fail records a failure from src and returns how long to wait before
// answering it.
func (a *authFailures) fail(src string, base time.Duration) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if a.m == nil {
		a.m = map[string]failRecord{}
	}
	if len(a.m) > 10000 {
		for k, r := range a.m {
			if now.Sub(r.last) > failMemory {
				delete(a.m, k)
			}
		}
	}
	r := a.m[src]
	if now.Sub(r.last) > failMemory {
		r.n = 0
	}
	r.n++
	r.last = now
	a.m[src] = r
	return base << min(r.n-1, 5)
}

// summary logs a warning about a source once, then counts its repeats and
// logs one line per source and interval with the count.
type summary struct {
	log    *slog.Logger
	record func(src, msg string) // also told of every warning (the console's refusals); may be nil

	mu   sync.Mutex
	seen map[summaryKey]*summaryEntry
}

type summaryKey struct{ msg, src string }

type summaryEntry struct {
	repeats int
	args    []any
}

func (s *summary) warn(src, msg string, args ...any) {
	if s.record != nil {
		s.record(src, msg)
	}
	s.mu.Lock()
	if s.seen == nil {
		s.seen = map[summaryKey]*summaryEntry{}
	}
	k := summaryKey{msg, src}
	if e, ok := s.seen[k]; ok {
		e.repeats++
		e.args = args
		s.mu.Unlock()
		return
	}
	s.seen[k] = &summaryEntry{}
	s.mu.Unlock()
	s.log.Warn(msg, append([]any{"source", src}, args...)...)
}

// flush logs the repeats counted since the last flush and forgets the
// sources, so the next warning about each is logged at once again.
func (s *summary) flush(interval time.Duration) {
	s.mu.Lock()
	seen := s.seen
	s.seen = nil
	s.mu.Unlock()
	keys := make([]summaryKey, 0, len(seen))
	for k, e := range seen {
		if e.repeats > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].src < keys[j].src || keys[i].src == keys[j].src && keys[i].msg < keys[j].msg
	})
	for _, k := range keys {
		e := seen[k]
		s.log.Warn(k.msg+" (repeated)", append([]any{"source", k.src, "repeats", e.repeats, "interval", interval}, e.args...)...)
	}
}

func (s *summary) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flush(interval)
			return
		case <-t.C:
			s.flush(interval)
		}
	}
}
