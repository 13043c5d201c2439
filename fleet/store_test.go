package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluicehq/sluice/internal/testutil"
)

const testSecret = "fleet-test-secret-0123456789"

func freePair(t testing.TB) string { return testutil.FreePortPair(t) }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testFleet is n edges with embedded store nodes on loopback, every one
// given the same join list (itself included).
type testFleet struct {
	t     *testing.T
	addrs []string
	dirs  []string
	edges []*Store
}

func newTestFleet(t *testing.T, n int, tweak func(*Config)) *testFleet {
	t.Helper()
	f := &testFleet{t: t}
	for range n {
		f.addrs = append(f.addrs, freePair(t))
		f.dirs = append(f.dirs, t.TempDir())
	}
	f.edges = make([]*Store, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.edges[i], errs[i] = Open(context.Background(), f.config(i, tweak))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			f.close()
			t.Fatalf("edge %d: %v", i, err)
		}
	}
	t.Cleanup(f.close)
	return f
}

func (f *testFleet) config(i int, tweak func(*Config)) Config {
	c := Config{
		Name:         "edge" + strconv.Itoa(i),
		Listen:       f.addrs[i],
		Join:         f.addrs,
		Secret:       testSecret,
		StateDir:     f.dirs[i],
		StartTimeout: 30 * time.Second,
		Heartbeat:    250 * time.Millisecond,
		EdgeTTL:      2 * time.Second,
		Logger:       quietLogger(),
	}
	if tweak != nil {
		tweak(&c)
	}
	return c
}

// close stops the edges together, as a fleet shut down at once would be:
// one by one, the last would wait for a store that lost its majority.
func (f *testFleet) close() {
	var wg sync.WaitGroup
	for _, e := range f.edges {
		if e != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.Close()
			}()
		}
	}
	wg.Wait()
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFleetMembersSeeEachOther(t *testing.T) {
	f := newTestFleet(t, 3, nil)
	for i, e := range f.edges {
		waitFor(t, fmt.Sprintf("edge %d sees 3 members", i), 5*time.Second, func() bool { return len(e.Members()) == 3 })
	}
}

// Two edges claim the same key at once, many times over: exactly one wins
// each time, and the loser is told who has it.
func TestFleetClaimRaceOneWinner(t *testing.T) {
	f := newTestFleet(t, 3, nil)
	ctx := context.Background()
	const rounds = 200
	var wins [3]int
	for r := range rounds {
		key := "host:race" + strconv.Itoa(r) + ".example.com"
		a, b := r%3, (r+1)%3
		var wg sync.WaitGroup
		var won atomic.Int32
		results := make([]error, 2)
		for j, edge := range []int{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := f.edges[edge].Claim(ctx, key, []byte(`{"owner":"`+strconv.Itoa(edge)+`"}`), true)
				results[j] = err
				if err == nil {
					won.Add(1)
					wins[edge]++
					return
				}
				if errors.Is(err, ErrTaken) && len(l.Holders) != 1 {
					t.Errorf("round %d: the loser was told of holders %v (%v)", r, l.Holders, err)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("round %d: %d winners (%v)", r, won.Load(), results)
		}
		for _, err := range results {
			if err != nil && !errors.Is(err, ErrTaken) {
				t.Fatalf("round %d: loser failed otherwise: %v", r, err)
			}
		}
	}
	t.Logf("wins per edge: %v", wins)
}

// A lease's compare-and-set: an update against an old revision fails.
func TestFleetUpdateConflict(t *testing.T) {
	f := newTestFleet(t, 3, nil)
	ctx := context.Background()
	l, err := f.edges[0].Claim(ctx, "port:9000", []byte(`1`), false)
	if err != nil {
		t.Fatal(err)
	}
	l2 := l
	l2.Value = []byte(`2`)
	if _, err := f.edges[1].Update(ctx, l2); err != nil {
		t.Fatal(err)
	}
	l.Value = []byte(`3`)
	if _, err := f.edges[2].Update(ctx, l); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	got, err := f.edges[2].Get(ctx, "port:9000")
	if err != nil || string(got.Value) != "2" {
		t.Fatalf("after the conflict: %s, %v", got.Value, err)
	}
	if err := f.edges[2].Delete(ctx, "port:9000", l.Revision); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale delete: %v, want ErrConflict", err)
	}
	if err := f.edges[2].Delete(ctx, "port:9000", got.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := f.edges[1].Claim(ctx, "port:9000", []byte(`4`), false); err != nil {
		t.Fatalf("claim after delete: %v", err)
	}
}

// Every edge learns of a change made on another through its watch.
func TestFleetWatchSpreadsChanges(t *testing.T) {
	var events [3]chan Event
	for i := range events {
		events[i] = make(chan Event, 64)
	}
	var n atomic.Int32
	f := newTestFleet(t, 3, func(c *Config) {
		ch := events[n.Add(1)-1]
		c.OnEvent = func(e Event) {
			if e.Kind == LeaseSet || e.Kind == LeaseGone {
				ch <- e
			}
		}
	})
	ctx := context.Background()
	l, err := f.edges[0].Claim(ctx, "host:w.example.com", []byte(`{}`), true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.edges {
		waitFor(t, fmt.Sprintf("edge %d knows the lease", i), 5*time.Second, func() bool {
			got, ok := f.edges[i].Lookup("host:w.example.com")
			return ok && got.Held(f.edges[0].ID())
		})
	}
	if err := f.edges[0].Delete(ctx, l.Key, l.Revision); err != nil {
		t.Fatal(err)
	}
	for i := range f.edges {
		waitFor(t, fmt.Sprintf("edge %d forgets the lease", i), 5*time.Second, func() bool {
			_, ok := f.edges[i].Lookup("host:w.example.com")
			return !ok
		})
	}
	for i := range events {
		var kinds []EventKind
		for len(events[i]) > 0 {
			kinds = append(kinds, (<-events[i]).Kind)
		}
		if len(kinds) < 2 || kinds[len(kinds)-1] != LeaseGone {
			t.Errorf("edge %d saw %v, want sets then a removal", i, kinds)
		}
	}
}

// An edge that dies stops renewing its membership; the others release what
// only it held, and the lease itself stays.
func TestFleetDeadEdgeReleasesItsHolds(t *testing.T) {
	f := newTestFleet(t, 3, nil)
	ctx := context.Background()
	if _, err := f.edges[2].Claim(ctx, "host:only2.example.com", []byte(`{}`), true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.edges[1].Claim(ctx, "host:both.example.com", []byte(`{}`), true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.edges[2].Hold(ctx, "host:both.example.com"); err != nil {
		t.Fatal(err)
	}
	dead := f.edges[2].ID()
	// Kill the edge without leaving: its node stops, its membership is not
	// removed, only no longer renewed.
	f.edges[2].abandon()
	f.edges[2] = nil
	// The store elects new leaders after the loss, and a live edge whose
	// renewals failed meanwhile may be forgotten and join again: wait for
	// the state to settle, at most EdgeTTL past the election.
	live := f.edges[1].ID()
	var only, both Lease
	waitFor(t, "the dead edge's holds released, the live one's kept", 30*time.Second, func() bool {
		var err1, err2 error
		only, err1 = f.edges[0].Get(ctx, "host:only2.example.com")
		both, err2 = f.edges[0].Get(ctx, "host:both.example.com")
		return err1 == nil && err2 == nil && len(only.Holders) == 0 && !only.Released.IsZero() &&
			slices.Equal(both.Holders, []string{live}) && both.Released.IsZero()
	})
	if string(only.Value) != "{}" {
		t.Fatalf("the lease held only by the dead edge lost its record: %s", only.Value)
	}
	if _, ok := f.edges[1].Member(dead); ok {
		t.Fatal("the dead edge is still a member")
	}
}

// With one store node stopped, the other two keep granting, and still never
// grant one key twice.
func TestFleetNodeStoppedNoDoubleGrant(t *testing.T) {
	f := newTestFleet(t, 3, nil)
	ctx := context.Background()
	if _, err := f.edges[0].Claim(ctx, "host:before.example.com", []byte(`{}`), true); err != nil {
		t.Fatal(err)
	}
	f.edges[2].abandon()
	f.edges[2] = nil
	// The stopped node may have led the bucket's stream; the others elect
	// a new leader within a few seconds.
	for r := range 50 {
		key := "host:away" + strconv.Itoa(r) + ".example.com"
		var wg sync.WaitGroup
		var won, taken atomic.Int32
		var other atomic.Value
		for _, e := range f.edges[:2] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := e.Claim(ctx, key, []byte(`{}`), true)
				switch {
				case err == nil:
					won.Add(1)
				case errors.Is(err, ErrTaken):
					taken.Add(1)
				default:
					other.Store(err)
				}
			}()
		}
		wg.Wait()
		if won.Load() > 1 {
			t.Fatalf("round %d: the key was granted twice", r)
		}
		if err := other.Load(); err != nil {
			if r == 0 {
				// A claim during the election may time out; it must not grant.
				t.Logf("round 0 during the election: %v", err)
				continue
			}
			t.Fatalf("round %d: %v", r, err)
		}
		if won.Load() != 1 {
			t.Fatalf("round %d: no winner (%d taken)", r, taken.Load())
		}
	}
	if _, err := f.edges[1].Claim(ctx, "host:before.example.com", []byte(`{}`), true); !errors.Is(err, ErrTaken) {
		t.Fatalf("a lease made before the node stopped: %v, want ErrTaken", err)
	}
}

// An external NATS that is not there: a clear error, quickly.
func TestFleetUnreachableNATS(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	_, err = Open(context.Background(), Config{
		Listen: freePair(t), Secret: testSecret, NATS: "nats://" + addr,
		StartTimeout: 5 * time.Second, Logger: quietLogger(),
	})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
	t.Log(err)
}

// An embedded store whose peers never come: Open gives up at StartTimeout
// and says how many edges must run.
func TestFleetEmbeddedWithoutQuorum(t *testing.T) {
	addrs := []string{freePair(t), freePair(t), freePair(t)}
	_, err := Open(context.Background(), Config{
		Listen: addrs[0], Join: addrs, Secret: testSecret, StateDir: t.TempDir(),
		StartTimeout: 3 * time.Second, Logger: quietLogger(),
	})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}
	t.Log(err)
}

func TestKeyEncoding(t *testing.T) {
	for _, k := range []string{"host:app.example.com", "port:8080", "udp:53", "host:*.x.y", "a=b", ".lead", "trail.", "a..b", "host:ünï"} {
		enc := encodeKey(k)
		if !keyValid(enc) {
			t.Errorf("%q encodes to %q, not a valid bucket key", k, enc)
		}
		dec, err := decodeKey(enc)
		if err != nil || dec != k {
			t.Errorf("%q -> %q -> %q, %v", k, enc, dec, err)
		}
	}
}

// keyValid is the bucket's own rule for keys, as nats.go checks it.
func keyValid(k string) bool {
	if k == "" || k[0] == '.' || k[len(k)-1] == '.' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=' || c == '.' || c == '/') {
			return false
		}
		if c == '.' && i > 0 && k[i-1] == '.' {
			return false
		}
	}
	return true
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// abandon stops the edge as kill -9 would: the node and the connection go,
// the membership is left to expire.
func (s *Store) abandon() {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.stop)
	s.shutdown()
	s.wg.Wait()
}

// An operator's NATS: a standalone JetStream server, two edges using it;
// the buckets fall back to one replica, and a race still has one winner.
func TestFleetExternalNATS(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	var edges []*Store
	for i := range 2 {
		e, err := Open(context.Background(), Config{
			Name: "ext" + strconv.Itoa(i), Listen: freePair(t), Secret: testSecret, NATS: srv.ClientURL(),
			StartTimeout: 10 * time.Second, Logger: quietLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		edges = append(edges, e)
	}
	ctx := context.Background()
	for r := range 50 {
		key := "port:" + strconv.Itoa(20000+r)
		var won atomic.Int32
		var wg sync.WaitGroup
		for _, e := range edges {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.Claim(ctx, key, []byte(`{}`), true); err == nil {
					won.Add(1)
				} else if !errors.Is(err, ErrTaken) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("round %d: %d winners", r, won.Load())
		}
	}
	waitFor(t, "both edges see each other", 5*time.Second, func() bool { return len(edges[0].Members()) == 2 && len(edges[1].Members()) == 2 })
}

// An edge whose store loses its majority keeps what it knows, says it is
// cut off, and grants nothing.
func TestFleetStoreLostServesWhatIsKnown(t *testing.T) {
	f := newTestFleet(t, 3, func(c *Config) { c.OpTimeout = time.Second })
	ctx := context.Background()
	if _, err := f.edges[0].Claim(ctx, "host:known.example.com", []byte(`{"v":1}`), true); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		f.edges[i].abandon()
		f.edges[i] = nil
	}
	waitFor(t, "edge 0 reports the store lost", 10*time.Second, func() bool { return !f.edges[0].Stats().Connected })
	if l, ok := f.edges[0].Lookup("host:known.example.com"); !ok || string(l.Value) != `{"v":1}` {
		t.Fatalf("the known lease: %+v %v", l, ok)
	}
	errsBefore := f.edges[0].Stats().Errors
	if _, err := f.edges[0].Claim(ctx, "host:new.example.com", []byte(`{}`), true); err == nil || errors.Is(err, ErrTaken) {
		t.Fatalf("a claim without a store majority: %v, want a store error", err)
	}
	if f.edges[0].Stats().Errors <= errsBefore {
		t.Fatal("the failed claim was not counted as a store error")
	}
}
