package load

import (
	"math"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/bench/link"
	"github.com/sluicehq/sluice/bench/target"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startTarget(t *testing.T) *target.Target {
	t.Helper()
	tg, err := target.Start("127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

func TestTransferForMovesEverythingWithinTheCap(t *testing.T) {
	tg := startTarget(t)
	for _, upload := range []bool{true, false} {
		n, d, err := TransferFor(tg.TCPAddr(), 8<<20, upload, 10*time.Second, nil)
		if err != nil || n != 8<<20 || d <= 0 {
			t.Fatalf("upload=%v: moved %d in %v (%v), want 8 MiB", upload, n, d, err)
		}
	}
}

// At a 20 MB/s cap, 64 MiB cannot cross in 300 ms: both directions must
// stop at the cap and count only what crossed, about 6 MB.
func TestTransferForStopsAtTheCapAndCountsWhatCrossed(t *testing.T) {
	tg := startTarget(t)
	l, err := link.New(link.Symmetric(2*time.Millisecond, 20))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ln, err := l.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Forward(ln, tg.TCPAddr())
	for _, upload := range []bool{true, false} {
		n, d, err := TransferFor(ln.Addr().String(), 64<<20, upload, 300*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("upload=%v: %v", upload, err)
		}
		if rate := MBps(n, d); rate > 30 || rate < 5 || n >= 64<<20 {
			t.Fatalf("upload=%v: %d bytes in %v = %.1f MB/s through a 20 MB/s link", upload, n, d, rate)
		}
	}
}

func TestParallelForAndFairness(t *testing.T) {
	tg := startTarget(t)
	agg, rates, err := ParallelFor(tg.TCPAddr(), 4, 4<<20, false, 10*time.Second, nil)
	if err != nil || agg <= 0 || len(rates) != 4 {
		t.Fatalf("ParallelFor = %v, %v, %v", agg, rates, err)
	}
	for i, r := range rates {
		if r <= 0 {
			t.Fatalf("connection %d: rate %v", i, r)
		}
	}
	cases := []struct {
		rates []float64
		want  float64
	}{{[]float64{10, 10, 10}, 1}, {[]float64{5, 10, 15}, 2}, {[]float64{40, 10, 10, 20}, 2}, {[]float64{1, 0}, math.Inf(1)}}
	for _, c := range cases {
		if got := Fairness(c.rates); got != c.want {
			t.Errorf("Fairness(%v) = %v, want %v", c.rates, got, c.want)
		}
	}
}

func TestProbeAndLatency(t *testing.T) {
	tg := startTarget(t)
	if err := Probe(tg.TCPAddr(), time.Second); err != nil {
		t.Fatal(err)
	}
	h, err := Latency(tg.TCPAddr(), 10, 100, time.Second, nil)
	if err != nil || h.TotalCount() != 100 {
		t.Fatalf("Latency: %v rounds, %v", h.TotalCount(), err)
	}
	var closed net.Listener
	closed, _ = net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	if err := Probe(addr, 200*time.Millisecond); err == nil {
		t.Fatal("a probe of a closed port succeeded")
	}
}

// The connection-rate load by hand completes connections against a live
// target and fails, naming the cause, against a closed port.
func TestManualConnRate(t *testing.T) {
	tg := startTarget(t)
	out, err := Manual(tg.TCPAddr(), "connrate", 0, 200, 2)
	if err != nil || !strings.Contains(out, "over 2 workers, 0 failed") {
		t.Fatalf("Manual connrate: %q, %v", out, err)
	}
	if rate, _ := strconv.Atoi(strings.Fields(out)[0]); rate <= 0 {
		t.Fatalf("Manual connrate reported %q: want a positive rate first", out)
	}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	if _, err := Manual(addr, "connrate", 0, 50, 1); err == nil || !strings.Contains(err.Error(), "no connection completed") {
		t.Fatalf("Manual connrate against a closed port: %v, want no connection completed", err)
	}
}
