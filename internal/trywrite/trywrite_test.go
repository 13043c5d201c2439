//go:build unix

package trywrite

import (
	"io"
	"testing"

	"github.com/sluicehq/sluice/internal/testutil"
)

// A socket whose peer does not read takes what fits in the buffers and then
// nothing: the writes come back short, without an error and without
// blocking; once the peer reads, the rest goes.
func TestWriteStopsAtAFullSocket(t *testing.T) {
	a, b := testutil.TCPPair(t)
	w := New(a)
	if w == nil {
		t.Fatal("New returned nil for a TCP connection")
	}
	p := make([]byte, 64<<20) // far more than loopback buffers hold
	n, err := w.Write(p)
	if err != nil {
		t.Fatalf("Write into a filling socket: %v", err)
	}
	if n <= 0 || n >= len(p) {
		t.Fatalf("Write took %d of %d bytes; want part of them", n, len(p))
	}
	// Data still moving from the send buffer to the peer's receive buffer
	// frees room for a while: write until the socket takes nothing.
	for tries := 0; ; tries++ {
		m, err := w.Write(p[n:])
		if err != nil {
			t.Fatalf("Write into a full socket: %v", err)
		}
		if m == 0 {
			break
		}
		if n += m; n >= len(p) || tries == 1000 {
			t.Fatalf("the socket took %d bytes in %d writes without filling up", n, tries+1)
		}
	}
	got := make(chan int64, 1)
	go func() {
		k, _ := io.CopyN(io.Discard, b, int64(n))
		got <- k
	}()
	if k := <-got; k != int64(n) {
		t.Fatalf("peer read %d bytes; want the %d written", k, n)
	}
}

// A closed socket refuses the write with an error, as a blocking write
// would.
func TestWriteOnAClosedSocketFails(t *testing.T) {
	a, _ := testutil.TCPPair(t)
	w := New(a)
	a.Close()
	if n, err := w.Write([]byte("x")); err == nil || n != 0 {
		t.Fatalf("Write on a closed socket: %d, %v; want 0 and an error", n, err)
	}
}

func TestWriteAllocatesNothing(t *testing.T) {
	a, b := testutil.TCPPair(t)
	go io.Copy(io.Discard, b)
	w := New(a)
	p := []byte("window update")
	if allocs := testing.AllocsPerRun(100, func() { w.Write(p) }); allocs != 0 {
		t.Fatalf("Write allocated %v times per call; want 0", allocs)
	}
}
