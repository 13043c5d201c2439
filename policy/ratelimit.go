package policy

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

type rateLimit struct {
	limit   rate.Limit
	burst   int
	clients *clientTable[rate.Limiter]
}

// ParseRate reads "N/DURATION" (100/1m, 5/s, 10/30s): N events per
// DURATION. A bare unit means one of it.
func ParseRate(s string) (n int, per time.Duration, err error) {
	num, dur, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not N/DURATION (write it like 100/1m or 5/s)", s)
	}
	n, err = strconv.Atoi(num)
	if err != nil || n <= 0 {
		return 0, 0, fmt.Errorf("%q: N must be a positive whole number (write it like 100/1m)", s)
	}
	if dur != "" && (dur[0] < '0' || dur[0] > '9') {
		dur = "1" + dur
	}
	per, err = time.ParseDuration(dur)
	if err != nil || per <= 0 {
		return 0, 0, fmt.Errorf("%q: the period must be a positive duration (write it like 100/1m or 5/s)", s)
	}
	return n, per, nil
}

func newRateLimit(p *Policy, c *RateLimit) (*rateLimit, error) {
	n, per, err := ParseRate(c.Limit)
	if err != nil {
		return nil, fmt.Errorf("limit: %v", err)
	}
	if c.Burst < 0 {
		return nil, fmt.Errorf("burst must not be negative")
	}
	rl := &rateLimit{limit: rate.Limit(float64(n) / per.Seconds()), burst: n}
	if c.Burst > 0 {
		rl.burst = c.Burst
	}
	rl.clients = newClientTable(p.opts.MaxClients, func(l *rate.Limiter, now time.Time) bool {
		return l.TokensAt(now) >= float64(rl.burst)
	})
	return rl, nil
}

func (*rateLimit) kind() string { return "rate-limit" }

// take spends one token of the client's bucket, or says how long until one
// is there.
func (rl *rateLimit) take(x *exchange) (time.Duration, bool) {
	now := x.in.now
	l := rl.clients.get(x.in.client.Addr(), now, func() *rate.Limiter { return rate.NewLimiter(rl.limit, rl.burst) })
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

func (rl *rateLimit) conn(x *exchange) *Decision {
	if _, ok := rl.take(x); ok {
		return nil
	}
	return x.decide(0, true)
}

func (rl *rateLimit) request(x *exchange) *Decision {
	d, ok := rl.take(x)
	if ok {
		return nil
	}
	retryAfter(x.w.Header(), d)
	return x.refuse(http.StatusTooManyRequests, "Too many requests", "This tunnel limits how often one address may call it. Retry after the time in the Retry-After header.")
}
