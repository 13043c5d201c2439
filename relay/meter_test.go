package relay

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/mux"
)

// muxPair returns a stream whose peer end the caller reads and writes.
func muxPair(t testing.TB) (local, peer *mux.Stream) {
	t.Helper()
	c1, c2 := testutil.TCPPair(t)
	cs, err := mux.Client(c1, mux.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ss, err := mux.Server(c2, mux.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); ss.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	local, err = cs.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	local.Write([]byte{0}) // the peer learns of a stream when data arrives
	peer, err = ss.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var one [1]byte
	if _, err := io.ReadFull(peer, one[:]); err != nil {
		t.Fatal(err)
	}
	return local, peer
}

// TestMeterCountsWhileOpen: both directions, socket to stream and stream to
// socket, show in the meter before the connection ends.
func TestMeterCountsWhileOpen(t *testing.T) {
	client, a := testutil.TCPPair(t)
	st, peer := muxPair(t)
	var m Meter
	done := make(chan Result, 1)
	go func() { done <- Relay(a, st, Options{Meter: &m}) }()

	deadline := time.Now().Add(10 * time.Second)
	client.SetDeadline(deadline)
	peer.SetDeadline(deadline)
	up := make([]byte, 300<<10)
	if _, err := client.Write(up); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(peer, up); err != nil {
		t.Fatal(err)
	}
	down := make([]byte, 200<<10)
	if _, err := peer.Write(down); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(client, down); err != nil {
		t.Fatal(err)
	}
	// Still open: the relay has not returned, yet the meter shows it all.
	select {
	case <-done:
		t.Fatal("relay ended before either side closed")
	default:
	}
	// A count is added just after its bytes are handed on, so the peer may
	// read them a moment before the meter shows them.
	until := time.Now().Add(10 * time.Second)
	for (m.AToB.Load() != int64(len(up)) || m.BToA.Load() != int64(len(down))) && time.Now().Before(until) {
		time.Sleep(time.Millisecond)
	}
	if got := m.AToB.Load(); got != int64(len(up)) {
		t.Errorf("AToB while open = %d, want %d", got, len(up))
	}
	if got := m.BToA.Load(); got != int64(len(down)) {
		t.Errorf("BToA while open = %d, want %d", got, len(down))
	}
	client.CloseWrite()
	peer.CloseWrite()
	res := <-done
	if res.AToB != m.AToB.Load() || res.BToA != m.BToA.Load() {
		t.Errorf("result %d/%d disagrees with meter %d/%d", res.AToB, res.BToA, m.AToB.Load(), m.BToA.Load())
	}
}

var _ net.Conn = (*mux.Stream)(nil)

// BenchmarkMeteredStreamToSocket is the cost of metering the stream to
// socket direction (counted inside mux.Stream.Forward): the same relay with
// and without a Meter, side by side.
func BenchmarkMeteredStreamToSocket(b *testing.B) {
	for _, metered := range []bool{false, true} {
		b.Run("meter="+map[bool]string{false: "off", true: "on"}[metered], func(b *testing.B) {
			sink, a := testutil.TCPPair(b)
			st, peer := muxPair(b)
			var m *Meter
			if metered {
				m = &Meter{}
			}
			done := make(chan struct{})
			go func() { Relay(a, st, Options{Meter: m}); close(done) }()
			go io.Copy(io.Discard, sink)
			buf := make([]byte, 64<<10)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := peer.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			peer.Close()
			sink.Close()
			<-done
		})
	}
}
