package coalesce

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer records every write the destination receives.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func TestEveryLineArrivesOnceInOrderPerWriter(t *testing.T) {
	var dst syncBuffer
	w := New(&dst)
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				fmt.Fprintf(w, "g%d line %d\n", g, i)
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(dst.buf.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines arrived, want %d", len(got), writers*lines)
	}
	for _, l := range got {
		var g, i int
		if _, err := fmt.Sscanf(l, "g%d line %d", &g, &i); err != nil {
			t.Fatalf("torn line %q: %v", l, err)
		}
		if i != next[g] {
			t.Fatalf("writer %d: line %d arrived where %d was due", g, i, next[g])
		}
		next[g]++
	}
	t.Logf("%d lines in %d writes", len(got), dst.writes)
}

// blockingWriter holds every write until released, so lines queue behind it.
type blockingWriter struct {
	syncBuffer
	entered chan struct{}
	release chan struct{}
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.syncBuffer.Write(p)
}

func TestLinesWaitingBehindAWriteLeaveTogether(t *testing.T) {
	dst := &blockingWriter{entered: make(chan struct{}, 10), release: make(chan struct{})}
	w := New(dst)
	io.WriteString(w, "first\n")
	<-dst.entered // the flusher is writing "first"
	for i := range 5 {
		fmt.Fprintf(w, "queued %d\n", i)
	}
	close(dst.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if dst.writes != 2 {
		t.Fatalf("%d writes reached the destination, want 2 (the first line, then the five queued behind it)", dst.writes)
	}
	want := "first\nqueued 0\nqueued 1\nqueued 2\nqueued 3\nqueued 4\n"
	if got := dst.buf.String(); got != want {
		t.Fatalf("destination got %q, want %q", got, want)
	}
}

type failingWriter struct{}

func (failingWriter) Write(p []byte) (int, error) { return 0, errors.New("disk full") }

func TestDestinationErrorIsReported(t *testing.T) {
	w := New(failingWriter{})
	io.WriteString(w, "lost\n")
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Close = %v, want the destination's error", err)
	}
	if _, err := io.WriteString(w, "late\n"); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Write after Close = %v, want io.ErrClosedPipe", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
}

func TestAStalledDestinationHoldsWritersAtTheBound(t *testing.T) {
	dst := &blockingWriter{entered: make(chan struct{}, 100), release: make(chan struct{})}
	w := New(dst)
	io.WriteString(w, "x")
	<-dst.entered
	chunk := bytes.Repeat([]byte("y"), maxPending)
	w.Write(chunk) // fills pending to the bound
	blocked := make(chan struct{})
	go func() {
		w.Write([]byte("z"))
		close(blocked)
	}()
	select {
	case <-blocked:
		t.Fatal("a write past the bound returned while the destination was stalled")
	default:
	}
	close(dst.release)
	<-blocked
	w.Close()
	if got := dst.buf.Len(); got != 1+maxPending+1 {
		t.Fatalf("destination got %d bytes, want %d", got, 1+maxPending+1)
	}
}
