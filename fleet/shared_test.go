package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Three edges raising their counts under one key at once stop exactly at
// the bound: the fleet's sum never passes it, and every edge is refused at
// the end. An edge that leaves stops counting.
func TestFleetCountBoundAcrossEdges(t *testing.T) {
	f := newTestFleet(t, 3, nil)
	for i, e := range f.edges {
		waitFor(t, fmt.Sprintf("edge %d sees 3 members", i), 5*time.Second, func() bool { return len(e.Members()) == 3 })
	}
	ctx := context.Background()
	const max = 11
	got := make([]int, 3)
	var wg sync.WaitGroup
	for i, e := range f.edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; ; n++ {
				_, err := e.SetCount(ctx, "tunnels:alice", n, max)
				if errors.Is(err, ErrOverLimit) {
					return
				}
				if err != nil {
					t.Errorf("edge %d: %v", i, err)
					return
				}
				got[i] = n
			}
		}()
	}
	wg.Wait()
	if sum := got[0] + got[1] + got[2]; sum != max {
		t.Fatalf("the edges hold %v, sum %d; want the sum at the bound %d", got, sum, max)
	}
	// A lower count is always written.
	if sum, err := f.edges[0].SetCount(ctx, "tunnels:alice", 0, max); err != nil || sum != got[1]+got[2] {
		t.Fatalf("lowering edge 0 to 0: sum %d, %v; want %d", sum, err, got[1]+got[2])
	}
	// Edge 2 leaves: its count no longer adds up.
	f.edges[2].Close()
	gone := got[2]
	f.edges[2] = nil
	waitFor(t, "edge 0 sees edge 2 gone", 10*time.Second, func() bool { return len(f.edges[0].Members()) == 2 })
	// The store may be electing a new leader (edge 2's node left): the
	// write succeeds once it has one.
	var err error
	waitFor(t, "edge 0 takes the places of an edge that left", 20*time.Second, func() bool {
		_, err = f.edges[0].SetCount(ctx, "tunnels:alice", got[0]+gone, max)
		if errors.Is(err, ErrOverLimit) {
			t.Fatalf("edge 0 taking the places of an edge that left: %v", err)
		}
		return err == nil
	})
}

// Of edges asking for one lock at once, one gets it; the others wait until
// it is given back, and a lock whose holder never gives it back expires.
func TestFleetLockOneHolderAtATime(t *testing.T) {
	f := newTestFleet(t, 3, nil)
	ctx := context.Background()
	var won atomic.Int32
	var unlock func()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, e := range f.edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := e.Lock(ctx, "acme/app.example.com", time.Minute)
			switch {
			case err == nil:
				won.Add(1)
				mu.Lock()
				unlock = u
				mu.Unlock()
			case !errors.Is(err, ErrLocked):
				t.Errorf("edge %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d edges hold the lock, want 1", won.Load())
	}
	waited := make(chan error, 1)
	go func() { waited <- f.edges[1].WaitUnlocked(ctx, "acme/app.example.com") }()
	select {
	case err := <-waited:
		t.Fatalf("the wait ended while the lock was held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if _, err := f.edges[2].Lock(ctx, "acme/app.example.com", time.Second); err != nil {
		t.Fatalf("taking the lock after it was given back: %v", err)
	}
	// Never given back: it expires by itself.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := f.edges[0].WaitUnlocked(wctx, "acme/app.example.com"); err != nil {
		t.Fatalf("a lock with a one-second TTL: %v", err)
	}
}

// A file one edge writes, the others read; removed, it is gone for all.
func TestFleetFilesAreShared(t *testing.T) {
	f := newTestFleet(t, 3, nil)
	ctx := context.Background()
	if _, err := f.edges[1].ReadFile(ctx, "acme/app.example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a file nobody wrote: %v, want ErrNotFound", err)
	}
	if err := f.edges[0].WriteFile(ctx, "acme/app.example.com", []byte("cert")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "edge 2 reads the file", 5*time.Second, func() bool {
		b, err := f.edges[2].ReadFile(ctx, "acme/app.example.com")
		return err == nil && string(b) == "cert"
	})
	if err := f.edges[1].RemoveFile(ctx, "acme/app.example.com"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "edge 2 sees the file gone", 5*time.Second, func() bool {
		_, err := f.edges[2].ReadFile(ctx, "acme/app.example.com")
		return errors.Is(err, ErrNotFound)
	})
}
