package agent

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
)

// The book spreads slots over distinct edges, learns the fleet's, never
// puts two slots on one edge (even by two addresses), and moves a slot off
// an edge only when another is free.
func TestEdgeBookPicks(t *testing.T) {
	b := newEdgeBook([]string{"a:1"})
	if addr, wait := b.pick(0); addr != "a:1" || wait != 0 {
		t.Fatalf("primary picked %q after %v, want a:1 now", addr, wait)
	}
	b.use(0, "a:1", "A")
	if addr, _ := b.pick(1); addr != "" {
		t.Fatalf("a second slot picked %q with one edge known", addr)
	}
	if b.moveOff(0, "a:1", time.Minute) {
		t.Fatal("moved off the only edge")
	}
	// The fleet names a's other address and two more edges.
	b.learn([]control.Edge{{ID: "A", Addr: "10.0.0.1:1"}, {ID: "B", Addr: "b:1"}, {ID: "C", Addr: "c:1"}})
	if n := b.size(); n != 3 {
		t.Fatalf("book knows %d edges, want 3", n)
	}
	second, _ := b.pick(1)
	if second != "b:1" && second != "c:1" {
		t.Fatalf("second slot picked %q, want an edge other than A", second)
	}
	b.use(1, second, map[string]string{"b:1": "B", "c:1": "C"}[second])
	// A is going away: slot 0 moves to the edge nobody holds.
	if !b.moveOff(0, "a:1", time.Minute) {
		t.Fatal("did not move off an edge going away with a free one known")
	}
	next, wait := b.pick(0)
	if next == "a:1" || next == "10.0.0.1:1" || next == second || wait != 0 {
		t.Fatalf("primary moved to %q after %v (second slot on %q)", next, wait, second)
	}
	// Nothing free: the primary gets the edge whose avoidance ends first
	// (A's minute, not next's hour), and how long to wait for it.
	b.use(0, next, "")
	b.free(0, next, time.Hour)
	got, wait := b.pick(0)
	if (got != "a:1" && got != "10.0.0.1:1") || wait <= 0 || wait > time.Minute {
		t.Fatalf("primary picked %q after %v, want edge A within a minute", got, wait)
	}
	// A second slot never waits on an avoided edge: it is told to ask again.
	b.free(1, second, time.Hour)
	if got, wait := b.pick(1); got != "" || wait <= 0 {
		t.Fatalf("second slot picked %q after %v with every free edge avoided", got, wait)
	}
}

// A Fleet list that drops an edge forgets it; the addresses the agent was
// given are kept whatever the fleet says.
func TestEdgeBookKeepsGivenAddresses(t *testing.T) {
	b := newEdgeBook([]string{"a:1", "b:1"})
	b.learn([]control.Edge{{ID: "A", Addr: "a:1"}, {ID: "C", Addr: "c:1"}})
	b.learn([]control.Edge{{ID: "A", Addr: "a:1"}})
	if got := b.known(); len(got) != 2 || got[0] != "a:1" || got[1] != "b:1" {
		t.Fatalf("known %v, want [a:1 b:1]", got)
	}
	b.learn(nil) // an empty list (an edge not in a fleet) changes nothing
	if n := b.size(); n != 2 {
		t.Fatalf("size %d after an empty list", n)
	}
}
