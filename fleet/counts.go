package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Counts are tallies the edges of a fleet keep together, such as an
// owner's open tunnels: one record per key holding each edge's own count,
// written with compare-and-set, so the edges bound a sum without a lock.
// Only the counts of current members add up: an edge that dies stops
// counting with its membership, and the next write drops its entry.

const countBucket = "sluice-counts"

// ErrOverLimit means a count would take the fleet's sum past its bound.
var ErrOverLimit = errors.New("fleet: the fleet's count is at its limit")

// buckets are the buckets opened on first use, by name.
type buckets struct {
	mu sync.Mutex
	kv map[string]jetstream.KeyValue
}

// extra returns the bucket name, making it on first use: the fleet's
// leases do not wait for buckets only some edges use.
func (s *Store) extra(ctx context.Context, name string) (jetstream.KeyValue, error) {
	s.more.mu.Lock()
	defer s.more.mu.Unlock()
	if kv := s.more.kv[name]; kv != nil {
		return kv, nil
	}
	var kv jetstream.KeyValue
	err := s.op(ctx, func(ctx context.Context) error {
		var err error
		kv, err = s.bucket(ctx, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	// A bucket just made answers reads once its replicas are up; until
	// then a read finds no responders. Wait for that here, once.
	for attempt := 0; ; attempt++ {
		_, err := kv.Get(ctx, "ready")
		if !errors.Is(err, nats.ErrNoResponders) || attempt >= 100 {
			break
		}
		if err := pause(ctx, min(attempt, 20)); err != nil {
			return nil, err
		}
	}
	if s.more.kv == nil {
		s.more.kv = map[string]jetstream.KeyValue{}
	}
	s.more.kv[name] = kv
	return kv, nil
}

// SetCount sets this edge's count under key to n, as long as the sum over
// the fleet's current members, n included, stays within max (max <= 0: no
// bound; a lower n is always written). It returns the sum, and
// ErrOverLimit with the sum it saw when n would pass max.
func (s *Store) SetCount(ctx context.Context, key string, n, max int) (int, error) {
	kv, err := s.extra(ctx, countBucket)
	if err != nil {
		return 0, err
	}
	bk := encodeKey(key)
	for attempt := 0; ; attempt++ {
		counts := map[string]int{}
		var rev uint64
		err := s.op(ctx, func(ctx context.Context) error {
			e, err := kv.Get(ctx, bk)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			rev = e.Revision()
			return json.Unmarshal(e.Value(), &counts)
		})
		if errors.Is(err, nats.ErrNoResponders) && attempt < 32 {
			// A bucket just made answers once its replicas are up.
			if err := pause(ctx, attempt); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		old := counts[s.id]
		sum := n
		for edge, c := range counts {
			if _, current := s.Member(edge); !current || edge == s.id {
				delete(counts, edge)
				continue
			}
			sum += c
		}
		if max > 0 && n > old && sum > max {
			return sum - n + old, ErrOverLimit
		}
		if n > 0 {
			counts[s.id] = n
		}
		data, _ := json.Marshal(counts)
		err = s.op(ctx, func(ctx context.Context) error {
			var err error
			if rev == 0 {
				_, err = kv.Create(ctx, bk, data)
			} else {
				_, err = kv.Update(ctx, bk, data, rev)
			}
			if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return fmt.Errorf("%w: %s", ErrConflict, key)
			}
			return err
		})
		if err == nil {
			return sum, nil
		}
		if !(errors.Is(err, ErrConflict) || errors.Is(err, nats.ErrNoResponders)) || attempt >= 32 {
			return 0, err
		}
		// Another edge wrote first, or this read came from a replica
		// behind the leader: read again.
		if err := pause(ctx, attempt); err != nil {
			return 0, err
		}
	}
}

func pause(ctx context.Context, attempt int) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(attempt+1) * time.Millisecond):
		return nil
	}
}
