package mux

import (
	"net"
	"sync"
	"testing"
	"time"
)

// tstDelayLink relays between two TCP connections, holding every chunk
// for delay in each direction: a long-RTT link on loopback.
func tstDelayLink(t testing.TB, delay time.Duration) (net.Conn, net.Conn) {
	return tstLink(t, delay, 0)
}

// tstLink is a userspace WAN link between two TCP connections: in each
// direction it reads at most rate bytes per second (0: no cap) and
// delivers every chunk delay after it read it. What the rate cap holds
// back waits in the sending side's socket buffers, as it waits in front of
// a real bottleneck.
func tstLink(t testing.TB, delay time.Duration, rate float64) (net.Conn, net.Conn) {
	t.Helper()
	a, aPeer := tcpPair(t)
	b, bPeer := tcpPair(t)
	return tstLinkOver(t, delay, rate, a, aPeer, b, bPeer)
}

// tstPipeDelayLink is tstDelayLink over net.Pipe, for a testing/synctest
// bubble (see tstPipePair): there the link's delay is exact.
func tstPipeDelayLink(t testing.TB, delay time.Duration) (net.Conn, net.Conn) {
	t.Helper()
	a, aPeer := net.Pipe()
	b, bPeer := net.Pipe()
	return tstLinkOver(t, delay, 0, a, aPeer, b, bPeer)
}

// tstLinkOver is tstLink between the connection pairs a-aPeer and
// b-bPeer: it relays between aPeer and bPeer and returns a and b.
func tstLinkOver(t testing.TB, delay time.Duration, rate float64, a, aPeer, b, bPeer net.Conn) (net.Conn, net.Conn) {
	t.Helper()
	var wg sync.WaitGroup
	relay := func(dst, src net.Conn) {
		defer wg.Done()
		type chunk struct {
			at time.Time
			b  []byte
		}
		q := make(chan chunk, 4096)
		go func() {
			defer close(q)
			var free time.Time // when the capped link has sent what was read
			for {
				if d := time.Until(free); d > time.Millisecond {
					time.Sleep(d)
				}
				buf := make([]byte, 32<<10)
				n, err := src.Read(buf)
				if n > 0 {
					sent := time.Now()
					if rate > 0 {
						// A late wake-up is made up for (up to 2 ms of
						// the link's time), or the cap would run slow.
						if lag := sent.Add(-2 * time.Millisecond); free.Before(lag) {
							free = lag
						}
						free = free.Add(time.Duration(float64(n) / rate * float64(time.Second)))
						if sent.Before(free) {
							sent = free
						}
					}
					q <- chunk{sent.Add(delay), buf[:n]}
				}
				if err != nil {
					return
				}
			}
		}()
		for c := range q {
			time.Sleep(time.Until(c.at))
			if _, err := dst.Write(c.b); err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
		for range q { // let the reader finish
		}
	}
	wg.Add(2)
	go relay(bPeer, aPeer)
	go relay(aPeer, bPeer)
	t.Cleanup(func() {
		a.Close()
		b.Close()
		wg.Wait()
	})
	return a, b
}
