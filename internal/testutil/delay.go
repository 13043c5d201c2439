package testutil

import (
	"net"
	"sync"
	"testing"
	"time"
)

// DelayProxy forwards every connection it accepts to target with oneWay
// added to each direction, as a long link would: a round trip through it
// takes at least twice oneWay more than without. It queues what the link
// holds in flight without bound, so it caps no throughput; the receiver's
// windows do. It stops, and every connection through it closes, at cleanup.
func DelayProxy(t testing.TB, target string, oneWay time.Duration) string {
	t.Helper()
	var wg sync.WaitGroup
	addr := Serve(t, func(c net.Conn) {
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			delayCopy(up.(*net.TCPConn), c, oneWay)
		}()
		delayCopy(c.(*net.TCPConn), up, oneWay)
		wg.Wait()
	})
	return addr
}

// delayCopy copies src to dst, each chunk written oneWay after it was read;
// at src's EOF it half-closes dst once the last chunk is out.
func delayCopy(dst *net.TCPConn, src net.Conn, oneWay time.Duration) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	q := make(chan chunk, 1<<14)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 64<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b[:n], time.Now().Add(oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			for range q { // let the reader end
			}
			return
		}
	}
	dst.CloseWrite()
}
