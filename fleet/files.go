package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Files are small blobs the edges of a fleet share, such as the ACME
// account and the certificates obtained for it, so one edge's work serves
// them all; a lock is a file that expires by itself, so that one edge at a
// time does work the others wait for, and an edge that dies holding it
// does not block them for longer than its TTL.

const fileBucket = "sluice-files"

// ErrLocked means another edge holds the lock.
var ErrLocked = errors.New("fleet: another edge holds the lock")

// ReadFile returns the file name, or ErrNotFound.
func (s *Store) ReadFile(ctx context.Context, name string) ([]byte, error) {
	kv, err := s.extra(ctx, fileBucket)
	if err != nil {
		return nil, err
	}
	var data []byte
	err = s.op(ctx, func(ctx context.Context) error {
		e, err := kv.Get(ctx, encodeKey(name))
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		data = e.Value()
		return nil
	})
	return data, err
}

// WriteFile stores data as the file name.
func (s *Store) WriteFile(ctx context.Context, name string, data []byte) error {
	kv, err := s.extra(ctx, fileBucket)
	if err != nil {
		return err
	}
	return s.op(ctx, func(ctx context.Context) error {
		_, err := kv.Put(ctx, encodeKey(name), data)
		return err
	})
}

// RemoveFile removes the file name; removing a missing file is no error.
func (s *Store) RemoveFile(ctx context.Context, name string) error {
	kv, err := s.extra(ctx, fileBucket)
	if err != nil {
		return err
	}
	return s.op(ctx, func(ctx context.Context) error {
		return kv.Purge(ctx, encodeKey(name), jetstream.PurgeTTL(markerTTL))
	})
}

// Lock takes the lock name for ttl at most: exactly one of the edges that
// ask at once gets it, the others ErrLocked. unlock gives it back (only if
// it is still this edge's).
func (s *Store) Lock(ctx context.Context, name string, ttl time.Duration) (unlock func(), err error) {
	kv, err := s.extra(ctx, fileBucket)
	if err != nil {
		return nil, err
	}
	key := encodeKey("lock:" + name)
	var rev uint64
	err = s.op(ctx, func(ctx context.Context) error {
		var err error
		rev, err = kv.Create(ctx, key, []byte(s.id), jetstream.KeyTTL(ttl))
		if errors.Is(err, jetstream.ErrKeyExists) {
			return ErrLocked
		}
		return err
	})
	if errors.Is(err, ErrLocked) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.OpTimeout)
		defer cancel()
		err := s.op(ctx, func(ctx context.Context) error {
			return kv.Purge(ctx, key, jetstream.LastRevision(rev), jetstream.PurgeTTL(markerTTL))
		})
		if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			s.cfg.Logger.Debug("fleet: could not give a lock back; it expires by itself", "lock", name, "err", err)
		}
	}, nil
}

// WaitUnlocked waits until no edge holds the lock name, or ctx ends.
func (s *Store) WaitUnlocked(ctx context.Context, name string) error {
	for {
		_, err := s.ReadFile(ctx, "lock:"+name)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fleet: lock %s still held: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
