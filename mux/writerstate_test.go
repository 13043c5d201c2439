package mux

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// The writer's lifecycle alone: every state against every event, and the
// sequences that matter, with no session, socket or goroutine.

// TestWriterStateTransitions is the whole transition table.
func TestWriterStateTransitions(t *testing.T) {
	type want struct {
		next writerState
		act  writerAction
	}
	table := map[writerState]map[writerEvent]want{
		writerIdle: {
			writerSignal:   {writerRunning, writerStart},
			writerLingered: {writerIdle, writerStop}, // no writer runs: cannot happen
			writerStopped:  {writerIdle, writerStop}, // no writer runs: cannot happen
			writerEnd:      {writerEnded, writerLast},
		},
		writerRunning: {
			writerSignal:   {writerSignalled, writerWake},
			writerLingered: {writerIdle, writerStop},
			writerStopped:  {writerIdle, writerStop},
			writerEnd:      {writerDraining, writerNone},
		},
		writerSignalled: {
			writerSignal:   {writerSignalled, writerWake},
			writerLingered: {writerRunning, writerGoOn},
			writerStopped:  {writerIdle, writerStop},
			writerEnd:      {writerDraining, writerNone},
		},
		writerDraining: {
			writerSignal:   {writerDraining, writerNone},
			writerLingered: {writerEnded, writerLast},
			writerStopped:  {writerEnded, writerLast},
			writerEnd:      {writerDraining, writerNone}, // the end comes once: cannot happen
		},
		writerEnded: {
			writerSignal:   {writerEnded, writerNone},
			writerLingered: {writerEnded, writerStop}, // no writer runs: cannot happen
			writerStopped:  {writerEnded, writerStop}, // no writer runs: cannot happen
			writerEnd:      {writerEnded, writerNone},
		},
	}
	states := []writerState{writerIdle, writerRunning, writerSignalled, writerDraining, writerEnded}
	events := []writerEvent{writerSignal, writerLingered, writerStopped, writerEnd}
	for _, s := range states {
		for _, e := range events {
			w, ok := table[s][e]
			if !ok {
				t.Fatalf("the table has no row for %s on %s", s, e)
			}
			next, act := s.on(e)
			if next != w.next || act != w.act {
				t.Errorf("%s on %s: %s, %s; want %s, %s", s, e, next, act, w.next, w.act)
			}
		}
	}
}

// TestWriterStateSequences: the lifecycles the session goes through, step
// by step, with the promise each one keeps.
func TestWriterStateSequences(t *testing.T) {
	type step struct {
		e    writerEvent
		want writerAction
	}
	for _, tc := range []struct {
		name  string
		steps []step
		end   writerState
	}{{
		// A signal after the writer's last look at the queue keeps it
		// running (the lost wake-up): it lingers once more instead of
		// ending with work queued.
		name: "a signal while lingering keeps the writer",
		steps: []step{
			{writerSignal, writerStart},
			{writerSignal, writerWake},
			{writerLingered, writerGoOn},
			{writerLingered, writerStop},
		},
		end: writerIdle,
	}, {
		name: "a writer that retired is started anew by the next signal",
		steps: []step{
			{writerSignal, writerStart},
			{writerLingered, writerStop},
			{writerSignal, writerStart},
		},
		end: writerRunning,
	}, {
		// The session ends while the writer runs: the writer does the
		// last write as it stops, and no writer starts after it.
		name: "the running writer does the last write",
		steps: []step{
			{writerSignal, writerStart},
			{writerEnd, writerNone},
			{writerSignal, writerNone},
			{writerStopped, writerLast},
			{writerSignal, writerNone},
		},
		end: writerEnded,
	}, {
		name: "a writer lingering when the session ends does the last write",
		steps: []step{
			{writerSignal, writerStart},
			{writerEnd, writerNone},
			{writerLingered, writerLast},
		},
		end: writerEnded,
	}, {
		// The writer saw the end (or its write failed) before fail took
		// the end step: the last write falls to a goroutine of its own.
		name: "a writer that stopped first leaves the last write to the end",
		steps: []step{
			{writerSignal, writerStart},
			{writerStopped, writerStop},
			{writerEnd, writerLast},
			{writerSignal, writerNone},
		},
		end: writerEnded,
	}, {
		name: "an idle session's end does the last write itself",
		steps: []step{
			{writerEnd, writerLast},
			{writerSignal, writerNone},
			{writerEnd, writerNone},
		},
		end: writerEnded,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := writerIdle
			var lasts int
			for i, st := range tc.steps {
				var act writerAction
				s, act = s.on(st.e)
				if act != st.want {
					t.Fatalf("step %d (%s): %s, want %s", i+1, st.e, act, st.want)
				}
				if act == writerLast {
					lasts++
				}
			}
			if s != tc.end {
				t.Errorf("ends %s, want %s", s, tc.end)
			}
			if ended := s == writerEnded; ended != (lasts == 1) || lasts > 1 {
				t.Errorf("%d last writes, ending %s: want exactly one once ended", lasts, s)
			}
		})
	}
}

// TestWriterStateOneLastWrite: however the writer's own events and the
// session's end interleave, the last write is asked for exactly once, and
// no writer is started after the end.
func TestWriterStateOneLastWrite(t *testing.T) {
	// Every sequence of up to six events with one end among them, where
	// writer events only come while a writer runs.
	events := []writerEvent{writerSignal, writerLingered, writerStopped}
	var walk func(s writerState, running, ended bool, lasts, depth int, path []string)
	walk = func(s writerState, running, ended bool, lasts, depth int, path []string) {
		if ended && !running && lasts != 1 {
			t.Errorf("%v: ended with no writer running and %d last writes", path, lasts)
		}
		if depth == 0 {
			return
		}
		try := func(e writerEvent) {
			next, act := s.on(e)
			r, l := running, lasts
			switch act {
			case writerStart:
				if ended {
					t.Errorf("%v then %s: a writer started after the end", path, e)
				}
				r = true
			case writerStop:
				r = false
			case writerLast:
				l++
				if e != writerEnd {
					r = false
				}
			}
			walk(next, r, ended || e == writerEnd, l, depth-1, append(path[:len(path):len(path)], fmt.Sprint(e)))
		}
		for _, e := range events {
			if e != writerSignal && !running {
				continue
			}
			try(e)
		}
		if !ended {
			try(writerEnd)
		}
	}
	walk(writerIdle, false, false, 0, 6, nil)
}

// TestWriterRetiresWhenIdle: a session's writer starts when a frame is
// queued and retires writerLinger after its last write, to the
// nanosecond on the bubble's clock; a frame queued after that starts a
// new one.
func TestWriterRetiresWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.KeepAliveInterval = -1 // no timer queues frames behind the test's back
		c, s := tstPipePair(t, cfg, cfg)
		state := func(x *Session) writerState {
			x.writerMu.Lock()
			defer x.writerMu.Unlock()
			return x.writer
		}
		check := func(when string, want writerState) {
			t.Helper()
			for _, x := range []struct {
				name string
				s    *Session
			}{{"client", c}, {"server", s}} {
				if got := state(x.s); got != want {
					t.Errorf("%s: the %s's writer is %s, want %s", when, x.name, got, want)
				}
			}
		}
		tstAdvance(time.Second) // the start-up probes are answered
		check("idle for a second", writerIdle)
		for round := range 2 {
			if _, err := c.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			synctest.Wait()
			check(fmt.Sprintf("round %d: just after a PING and its PONG", round+1), writerRunning)
			tstAdvance(writerLinger - time.Nanosecond)
			check(fmt.Sprintf("round %d: lingering", round+1), writerRunning)
			tstAdvance(time.Nanosecond)
			check(fmt.Sprintf("round %d: writerLinger after the last write", round+1), writerIdle)
		}
	})
}
