package relay_test

import (
	"io"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/relay"
)

// TestReadReady: what a socket has received is read without waiting, up
// to the buffer's capacity; an empty socket gives nothing at once; the end
// of the stream is left for the next read.
func TestReadReady(t *testing.T) {
	a, b := testutil.TCPPair(t)
	start := time.Now()
	got, err := relay.ReadReady(b, make([]byte, 0, 8))
	if err != nil || len(got) != 0 {
		t.Fatalf("empty socket: %q, %v; want nothing", got, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("ReadReady waited %s on an empty socket", d)
	}
	if _, err := a.Write([]byte("hello, world")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		got, err = relay.ReadReady(b, append(make([]byte, 0, 8), 'x'))
		if err != nil || len(got) > 1 || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || string(got) != "xhello, " {
		t.Fatalf("ReadReady = %q, %v; want what fits after the prefix, %q", got, err, "xhello, ")
	}
	a.Close()
	rest, err := io.ReadAll(b)
	if err != nil || string(rest) != "world" {
		t.Fatalf("the rest: %q, %v; want %q and the end of the stream", rest, err, "world")
	}
	if got, err := relay.ReadReady(b, make([]byte, 0, 8)); err != nil || len(got) != 0 {
		t.Fatalf("at the end of the stream: %q, %v; want nothing", got, err)
	}
}
