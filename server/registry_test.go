package server

import (
	"errors"
	"sync"
	"testing"
	"time"
)

type fakeRoute struct {
	o  Owner
	id int
}

func (f *fakeRoute) owner() Owner { return f.o }

func ownerOf(b byte) Owner { var o Owner; o[0] = b; return o }

func TestRegistryClaimHost(t *testing.T) {
	r := NewRegistry(time.Minute)
	a1 := &fakeRoute{o: ownerOf(1), id: 1}
	b := &fakeRoute{o: ownerOf(2), id: 2}
	if old, err := r.ClaimHost("App.localhost", a1); err != nil || old != nil {
		t.Fatalf("first claim: %v, %v", old, err)
	}
	if got, ok := r.Host("app.LOCALHOST"); !ok || got != a1 {
		t.Fatalf("lookup is not case-insensitive: %v %v", got, ok)
	}
	if _, err := r.ClaimHost("app.localhost", b); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("claim by another owner: got %v, want ErrNameTaken", err)
	}
	// The same owner (a reconnecting agent) takes over a live mapping.
	a2 := &fakeRoute{o: ownerOf(1), id: 3}
	if old, err := r.ClaimHost("app.localhost", a2); err != nil || old != a1 {
		t.Fatalf("reclaim by same owner: old %v, err %v; want old a1", old, err)
	}
	// The replaced route's late release must not unmap its successor.
	r.ReleaseHost("app.localhost", a1)
	if got, _ := r.Host("app.localhost"); got != a2 {
		t.Fatalf("stale release unmapped the new route: %v", got)
	}
}

func TestRegistryReservationAfterRelease(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRegistry(time.Minute)
	r.now = func() time.Time { return now }
	a := &fakeRoute{o: ownerOf(1)}
	b := &fakeRoute{o: ownerOf(2)}
	if _, err := r.ClaimHost("x.localhost", a); err != nil {
		t.Fatal(err)
	}
	r.ReleaseHost("x.localhost", a)
	if _, ok := r.Host("x.localhost"); ok {
		t.Fatal("released host still routes")
	}
	if _, err := r.ClaimHost("x.localhost", b); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("another owner within the grace period: got %v, want ErrNameTaken", err)
	}
	a2 := &fakeRoute{o: ownerOf(1)}
	if _, err := r.ClaimHost("x.localhost", a2); err != nil {
		t.Fatalf("owner reclaiming within the grace period: %v", err)
	}
	r.ReleaseHost("x.localhost", a2)
	now = now.Add(2 * time.Minute)
	if _, err := r.ClaimHost("x.localhost", b); err != nil {
		t.Fatalf("another owner after the grace period: %v", err)
	}
}

func TestRegistryPorts(t *testing.T) {
	r := NewRegistry(0)
	a := &fakeRoute{o: ownerOf(1)}
	b := &fakeRoute{o: ownerOf(2)}
	if _, err := r.ClaimPort(6002, a); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ClaimPort(6002, b); !errors.Is(err, ErrPortTaken) {
		t.Fatalf("got %v, want ErrPortTaken", err)
	}
	r.ReleasePort(6002, a)
	if _, err := r.ClaimPort(6002, b); err != nil {
		t.Fatalf("no grace: another owner should get the port: %v", err)
	}
	if got, ok := r.Port(6002); !ok || got != b {
		t.Fatalf("lookup: %v %v", got, ok)
	}
	if h, p := r.Count(); h != 0 || p != 1 {
		t.Fatalf("count: %d hosts %d ports", h, p)
	}
}

func TestRegistryConcurrentClaims(t *testing.T) {
	r := NewRegistry(time.Minute)
	const n = 32
	var wg sync.WaitGroup
	wins := make(chan Route, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rt := &fakeRoute{o: ownerOf(byte(i + 1)), id: i}
			if _, err := r.ClaimHost("race.localhost", rt); err == nil {
				wins <- rt
			}
		}(i)
	}
	wg.Wait()
	close(wins)
	if len(wins) != 1 {
		t.Fatalf("%d owners won the same name, want exactly 1", len(wins))
	}
	winner := <-wins
	if got, _ := r.Host("race.localhost"); got != winner {
		t.Fatalf("registry holds %v, winner was %v", got, winner)
	}
}

func TestValidNames(t *testing.T) {
	for name, want := range map[string]bool{
		"myapp": true, "a": true, "my-app-2": true, "-x": false, "x-": false,
		"": false, "my_app": false, "a.b": false, string(make([]byte, 64)): false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
	for host, want := range map[string]bool{
		"app.example.com": true, "localhost": true, "a..b": false, "bad_host.com": false, "": false,
	} {
		if got := ValidHostname(host); got != want {
			t.Errorf("ValidHostname(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestRandomName(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		n := RandomName()
		if !ValidName(n) {
			t.Fatalf("RandomName gave invalid label %q", n)
		}
		seen[n] = true
	}
	if len(seen) < 40 {
		t.Fatalf("only %d distinct names in 50 draws", len(seen))
	}
}
