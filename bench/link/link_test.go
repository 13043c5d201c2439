package link

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseShape(t *testing.T) {
	cases := []struct {
		in   string
		want Shape
	}{
		{"delay=25ms,rate=100MB", Symmetric(50*time.Millisecond, 100)},
		{"delay=25ms", Symmetric(50*time.Millisecond, 0)},
		{"delay=1ms,rate=30,queue=2ms", Shape{Up: Dir{time.Millisecond, 30, 2 * time.Millisecond}, Down: Dir{time.Millisecond, 30, 2 * time.Millisecond}}},
		{"up:delay=5ms,rate=10MB;down:delay=20ms", Shape{Up: Dir{Delay: 5 * time.Millisecond, RateMBps: 10}, Down: Dir{Delay: 20 * time.Millisecond}}},
	}
	for _, c := range cases {
		got, err := ParseShape(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseShape(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if back, err := ParseShape(got.String()); err != nil || back != got {
			t.Errorf("ParseShape(%q.String() = %q) = %+v, %v", c.in, got.String(), back, err)
		}
	}
	for _, bad := range []string{"", "delay", "delay=fast", "rate=-1", "delay=2h", "speed=1", "up:delay=1ms", "up:delay=1ms;sideways:delay=1ms"} {
		if _, err := ParseShape(bad); err == nil {
			t.Errorf("ParseShape(%q) accepted", bad)
		}
	}
}

// The transmitter sends at the capped rate after a burst of one queue's
// worth, and once the queue holds more than its bound, readers must wait:
// driven with a fixed clock.
func TestBottleneckKeepsRateAndBoundsQueue(t *testing.T) {
	b := newBottleneck(Dir{RateMBps: 100, Queue: 5 * time.Millisecond})
	t0 := time.Unix(1000, 0)
	// An idle transmitter banks at most one queue (5 ms) of sending time:
	// 500 KB leave at once, never before they arrived.
	for i := 0; i < 5; i++ {
		if got := b.send(t0, 100_000); got != t0 {
			t.Fatalf("100 KB #%d left %v after arrival, want at once (the burst)", i+1, got.Sub(t0))
		}
	}
	if w := b.wait(t0); w != 0 {
		t.Fatalf("with the burst spent and nothing queued, a reader waits %v", w)
	}
	// From here on 100 KB take 1 ms each at 100 MB/s and queue up: after
	// six more the queue holds 6 ms, over its 5 ms bound.
	var last time.Time
	for i := 1; i <= 6; i++ {
		last = b.send(t0, 100_000)
		if want := t0.Add(time.Duration(i) * time.Millisecond); last != want {
			t.Fatalf("100 KB #%d after the burst left at %v, want %v", i, last.Sub(t0), want.Sub(t0))
		}
	}
	if w := b.wait(t0); w != time.Millisecond {
		t.Fatalf("a reader at the full queue waits %v, want 1ms (6ms queued, 5ms bound)", w)
	}
	if w := b.wait(t0.Add(time.Millisecond)); w != 0 {
		t.Fatalf("after 1ms the queue is at its bound; wait %v, want 0", w)
	}
	// However long the idle, the credit is never more than one queue.
	late := t0.Add(time.Hour)
	for i := 0; i < 5; i++ {
		b.send(late, 100_000)
	}
	if got := b.send(late, 100_000); got != late.Add(time.Millisecond) {
		t.Fatalf("after an hour idle, the sixth 100 KB left %v after arrival, want 1ms", got.Sub(late))
	}
	if newBottleneck(Dir{Delay: time.Millisecond}) != nil {
		t.Fatal("a direction without a rate cap got a bottleneck")
	}
	if d := newBottleneck(Dir{RateMBps: 1}); d.queue != DefaultQueue {
		t.Fatalf("default queue %v, want %v", d.queue, DefaultQueue)
	}
}

// echoServer echoes each connection until EOF, then closes it.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func startLink(t *testing.T, shape Shape, to string) string {
	t.Helper()
	l, err := New(shape)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := l.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Forward(ln, to)
	t.Cleanup(func() { l.Close() })
	return ln.Addr().String()
}

func TestLinkDelaysBothDirections(t *testing.T) {
	addr := startLink(t, Shape{Up: Dir{Delay: 15 * time.Millisecond}, Down: Dir{Delay: 25 * time.Millisecond}}, echoServer(t))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := []byte("ping")
	buf := make([]byte, len(msg))
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		c.Write(msg)
		if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, msg) {
			t.Fatalf("echo %q, %v", buf, err)
		}
		// A lower bound only: the link must add both one-way delays.
		if d := time.Since(t0); d < 40*time.Millisecond {
			t.Fatalf("round trip %v through a 15+25 ms link", d)
		}
	}
}

// However fast the sender, bytes cannot cross a capped link faster than
// the cap allows: 3 MB at 20 MB/s take at least 150 ms, less what the
// queue and the kernel buffers hold when the sender stops.
func TestLinkNeverExceedsItsRateCap(t *testing.T) {
	addr := startLink(t, Symmetric(0, 20), echoServer(t))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 3_000_000
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, size))
		c.(*net.TCPConn).CloseWrite()
		done <- err
	}()
	t0 := time.Now()
	n, err := io.Copy(io.Discard, c)
	el := time.Since(t0)
	if err != nil || n != size {
		t.Fatalf("echoed %d of %d bytes: %v", n, size, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if el < 120*time.Millisecond {
		t.Fatalf("3 MB crossed a 20 MB/s link (both ways) in %v: the cap leaks", el)
	}
}

// A half-close crosses the link: the far side sees EOF and can still
// answer, and the answer arrives before the client's EOF.
func TestLinkCarriesHalfClose(t *testing.T) {
	for _, shape := range []Shape{{}, Symmetric(2*time.Millisecond, 50)} {
		addr := startLink(t, shape, echoServer(t))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("request"))
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "request" {
			t.Fatalf("shape %s: after a half-close read %q, %v; want the echo, then EOF", shape, got, err)
		}
	}
}

func TestLinkCloseEndsConnections(t *testing.T) {
	l, err := New(Symmetric(time.Millisecond, 0))
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := l.Listen("127.0.0.1:0")
	l.Forward(ln, echoServer(t))
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1))
	l.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection outlived its link's Close")
	}
}

func TestBottleneckIdleFromTheStart(t *testing.T) {
	b := newBottleneck(Dir{RateMBps: 100})
	if w := b.wait(time.Now()); w != 0 {
		t.Fatalf("a bottleneck that never sent asks readers to wait %v", w)
	}
}
