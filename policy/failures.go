package policy

import (
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Failed attempts (wrong passwords, bad signatures) are slowed per client
// address: after freeFailures in a row, the address is refused without a
// check for a period that doubles with each further failure, up to
// maxLockout. A success forgets the address; so does failMemory of quiet.
const (
	freeFailures = 5
	maxLockout   = 5 * time.Minute
	failMemory   = 15 * time.Minute
)

type failState struct {
	mu    sync.Mutex
	count int
	until time.Time
	last  time.Time
}

type failures struct {
	t *clientTable[failState]
}

func newFailures(max int) *failures {
	return &failures{t: newClientTable(max, func(s *failState, now time.Time) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return now.Sub(s.last) > failMemory && !now.Before(s.until)
	})}
}

// wait returns how long a is still refused without a check, or 0.
func (f *failures) wait(a netip.Addr, now time.Time) time.Duration {
	s := f.t.lookup(a)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Before(s.until) {
		return s.until.Sub(now)
	}
	return 0
}

// locked answers 429 with Retry-After while the client is locked out after
// its failures (what names them), or returns nil.
func (f *failures) locked(x *exchange, what string) *Decision {
	d := f.wait(x.in.client.Addr(), x.in.now)
	if d <= 0 {
		return nil
	}
	retryAfter(x.w.Header(), d)
	return x.refuse(http.StatusTooManyRequests, "Too many failures", "Too many "+what+" came from your address. Retry after the time in the Retry-After header.")
}

// fail counts a failure of a.
func (f *failures) fail(a netip.Addr, now time.Time) {
	s := f.t.get(a, now, func() *failState { return new(failState) })
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.last) > failMemory {
		s.count = 0
	}
	s.count++
	s.last = now
	if n := s.count - freeFailures; n >= 0 {
		d := maxLockout
		if n < 16 {
			d = min(time.Second<<n, maxLockout)
		}
		s.until = now.Add(d)
	}
}

// succeed forgets a's failures.
func (f *failures) succeed(a netip.Addr) {
	f.t.remove(a)
}
