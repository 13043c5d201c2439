// Package edgetest runs in-process edges and agents for tests: the one
// fixture every package that starts an edge in its tests uses (server's own
// tests, agent, e2e, the benchmarks). Only _test.go files import it.
//
// It takes the edge's and the agent's constructors as arguments instead of
// importing server and agent, so the tests inside those two packages can use
// it too (a package's own tests cannot import a package that imports it):
//
//	e := edgetest.Start(t, server.New, server.Config{Listen: edgetest.Loopback, Tokens: []string{edgetest.Token}, ...})
//	as := edgetest.NewAssignments()
//	a, _ := agent.New(agent.Config{Server: e.S.Addr().String(), Token: edgetest.Token, OnAssigned: as.Hook, ...})
//	assigned, stop := edgetest.RunAgent(t, a, as, 1)
//
// Each Start is an edge of its own: a test that needs several (a fleet)
// starts several, each with its own Listen address and state directory.
// Everything started is stopped by t.Cleanup, and every goroutine it started
// has ended by then, so the packages' goleak checks stay exact.
package edgetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
)

// Token is the agent token edges and agents of these tests share unless a
// test sets its own.
const Token = "edgetest-token"

// Loopback is the listen address of every listener an edge opens for a test:
// loopback, on a port the kernel picks.
const Loopback = "127.0.0.1:0"

// Server is an edge as a test runs it; *server.Server is one.
type Server interface {
	Serve(ctx context.Context) error
}

// Edge is one edge serving until the test ends or Stop.
type Edge[S Server] struct {
	// S is the edge itself, for its addresses, stats and internals.
	S S

	t      testing.TB
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// Start builds an edge with newEdge(cfg) and serves it until the test ends.
// A constructor's error ends the test at once; an error from Serve fails it
// when the edge stops.
func Start[C any, S Server](t testing.TB, newEdge func(C) (S, error), cfg C) *Edge[S] {
	t.Helper()
	s, err := newEdge(cfg)
	if err != nil {
		t.Fatalf("edgetest: starting the edge: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Edge[S]{S: s, t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("edgetest: edge Serve: %v", err)
		}
	})
	return e
}

// Stop stops the edge and returns once Serve has returned, with its error.
// Calling it again returns the same error.
func (e *Edge[S]) Stop() error {
	e.once.Do(func() {
		e.cancel()
		e.err = <-e.done
	})
	return e.err
}

// Runner is an agent as a test runs it; *agent.Agent is one.
type Runner interface {
	Run(ctx context.Context) error
}

// Assignments collects the tunnels an edge assigned to an agent: give Hook
// as the agent's OnAssigned.
type Assignments struct{ ch chan control.Assigned }

// NewAssignments returns an empty collector.
func NewAssignments() *Assignments { return &Assignments{ch: make(chan control.Assigned, 64)} }

// Hook records one assignment. Assignments beyond what the collector holds
// (an agent reconnecting many times) are left for the test's own hooks.
func (a *Assignments) Hook(_ int, as control.Assigned) {
	select {
	case a.ch <- as:
	default:
	}
}

// Next waits up to within for the next assignment.
func (a *Assignments) Next(t testing.TB, within time.Duration) control.Assigned {
	t.Helper()
	select {
	case as := <-a.ch:
		return as
	case <-time.After(within):
		t.Fatalf("edgetest: no tunnel assigned within %v", within)
		return control.Assigned{}
	}
}

// RunAgent runs r until the test ends or stop is called, and returns once
// the edge assigned n tunnels (as collected by as). The agent stopping
// before that, or 10 s passing, ends the test; an error from Run fails it
// when the agent stops.
func RunAgent(t testing.TB, r Runner, as *Assignments, n int) (assigned []control.Assigned, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	timeout := time.After(10 * time.Second)
	for range n {
		select {
		case a := <-as.ch:
			assigned = append(assigned, a)
		case err := <-errc:
			cancel()
			t.Fatalf("edgetest: agent stopped before its tunnels came up: %v", err)
		case <-timeout:
			cancel()
			<-errc
			t.Fatalf("edgetest: %d of %d tunnels assigned within 10 s", len(assigned), n)
		}
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("edgetest: agent Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return assigned, stop
}
