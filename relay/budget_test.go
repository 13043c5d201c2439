package relay

import (
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/internal/testutil"
)

// stalledConn stands in for a stream whose peer grants no credit: its
// Write records the capacity of the buffer it was handed, then blocks until
// released, as a stream's Write does while the buffer stays lent.
type stalledConn struct {
	net.Conn
	caps    chan<- int
	release <-chan struct{}
}

func (c stalledConn) Write(p []byte) (int, error) {
	c.caps <- cap(p)
	<-c.release
	return 0, errors.New("released")
}

// TestBusyConnectionsShareTheLargeBufferBudget: many busy connections, each
// blocked writing what it read, hold at most MaxLargeBuffers large read
// buffers between them; the rest read into small ones.
func TestBusyConnectionsShareTheLargeBufferBudget(t *testing.T) {
	const conns = MaxLargeBuffers + 172
	caps := make(chan int, conns)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range conns {
		client, src := testutil.TCPPair(t)
		if _, err := client.Write(make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			copyHalf(stalledConn{caps: caps, release: release}, src, nil)
		}()
	}
	large := 0
	for range conns {
		if <-caps == BufferSize {
			large++
		}
	}
	close(release)
	wg.Wait()
	if large > MaxLargeBuffers {
		t.Fatalf("%d connections blocked holding %d KiB buffers; want at most %d (the rest %d KiB)",
			large, BufferSize>>10, MaxLargeBuffers, SmallBufferSize>>10)
	}
	if large == 0 {
		t.Fatalf("no connection got a large buffer; want the first %d to", MaxLargeBuffers)
	}
	if n := largeOut.Load(); n != 0 {
		t.Fatalf("%d large buffers still counted as lent after every relay ended", n)
	}
}
