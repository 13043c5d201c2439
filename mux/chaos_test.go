package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tstExpected reports whether err is one of the errors the package
// documents for a stream or session call. Anything else (a raw I/O error
// leaking out, a nil where an error belongs) is a bug.
func tstExpected(err error) bool {
	for _, want := range []error{
		io.EOF, ErrStreamClosed, ErrStreamReset, ErrStreamRefused, ErrWriteClosed,
		ErrTimeout, ErrSessionClosed, ErrGoAway, context.Canceled, context.DeadlineExceeded,
	} {
		if errors.Is(err, want) {
			return true
		}
	}
	return false
}

// TestChaos runs random operations on both ends of many streams at once:
// writes, reads, half-closes, closes, resets, deadlines, new streams, and
// finally closes the sessions in the middle of it all. Nothing may panic,
// race, hang or return an undocumented error, and every goroutine ends.
func TestChaos(t *testing.T) {
	tight := DefaultConfig()
	tight.MaxConcurrentStreams, tight.AcceptBacklog = 8, 2
	tests := []struct {
		name   string
		cfg    Config
		goAway bool // the server sends GOAWAY half-way
	}{
		{"default config", DefaultConfig(), false},
		{"tight stream limits", tight, false},
		{"GOAWAY half-way", DefaultConfig(), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tstChaos(t, tc.cfg, tc.goAway) })
	}
}

func tstChaos(t *testing.T, cfg Config, goAway bool) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	c, s := sessionPair(t, cfg)
	var wg sync.WaitGroup
	// The run's phases end after a number of operations, not a fixed time:
	// a loaded machine does the same work as an idle one, only slower.
	const opsPerPhase = 800
	var ops, actors atomic.Int64
	halfway := make(chan struct{})
	countOp := func() {
		if ops.Add(1) == opsPerPhase {
			close(halfway)
		}
	}
	stop := make(chan struct{})
	unexpected := make(chan error, 100)
	check := func(what string, err error) {
		if err != nil && !tstExpected(err) {
			select {
			case unexpected <- errors.New(what + ": " + err.Error()):
			default:
			}
		}
	}

	// actor does random things to one end of a stream until told to stop
	// or until the stream is finished.
	actor := func(st *Stream, r *rand.Rand) {
		defer wg.Done()
		defer actors.Add(-1)
		defer st.Close() // as any application must, or the stream stays open
		buf := make([]byte, 64<<10)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			countOp()
			switch op := r.IntN(100); {
			case op < 40:
				_ = st.SetWriteDeadline(time.Now().Add(time.Duration(r.IntN(20)) * time.Millisecond))
				_, err := st.Write(tstPool[:r.IntN(len(buf))])
				check("Write", err)
				if err != nil && !errors.Is(err, ErrTimeout) {
					return
				}
			case op < 80:
				_ = st.SetReadDeadline(time.Now().Add(time.Duration(r.IntN(20)) * time.Millisecond))
				_, err := st.Read(buf[:r.IntN(len(buf))+1])
				check("Read", err)
				if err != nil && !errors.Is(err, ErrTimeout) {
					return
				}
			case op < 85:
				check("CloseWrite", st.CloseWrite())
			case op < 90:
				_ = st.SetDeadline(time.Time{})
			case op < 93:
				check("Reset", st.Reset())
				return
			case op < 97:
				check("Close", st.Close())
				return
			default:
				time.Sleep(time.Millisecond)
			}
		}
	}

	wg.Add(1)
	go func() { // the server accepts and plays the other end
		defer wg.Done()
		r := rand.New(rand.NewPCG(seed, 2))
		for {
			st, err := s.AcceptStream(context.Background())
			if err != nil {
				check("AcceptStream", err)
				return
			}
			wg.Add(1)
			actors.Add(1)
			go actor(st, rand.New(rand.NewPCG(r.Uint64(), 3)))
		}
	}()
	for g := range 4 { // clients keep opening streams
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(10+g)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				st, err := c.OpenStream(context.Background())
				if errors.Is(err, ErrStreamRefused) {
					time.Sleep(time.Millisecond) // at the limit: try again
					continue
				}
				if err != nil {
					check("OpenStream", err)
					return
				}
				wg.Add(1)
				actors.Add(1)
				go actor(st, rand.New(rand.NewPCG(r.Uint64(), 4)))
				time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
			}
		}()
	}
	wg.Add(1)
	go func() { // pings and stats on the side
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			_, err := c.Ping(ctx)
			cancel()
			check("Ping", err)
			_ = s.Stats()
		}
	}()

	tstRecv(t, halfway, fmt.Sprintf("%d operations", opsPerPhase))
	if goAway {
		check("GoAway", s.GoAway())
	}
	// After a GOAWAY no stream opens, and the streams open may all end
	// before the second phase's count.
	tstEventually(t, fmt.Sprintf("%d operations", 2*opsPerPhase), func() bool {
		return ops.Load() >= 2*opsPerPhase || goAway && actors.Load() == 0
	})
	// Nothing the applications did may have ended a session.
	if err := c.Err(); err != nil {
		t.Errorf("the client session ended on its own: %v", err)
	}
	if err := s.Err(); err != nil {
		t.Errorf("the server session ended on its own: %v", err)
	}
	// End the sessions while everything runs, then let the goroutines see it.
	c.Close()
	s.Close()
	close(stop)
	returned := make(chan struct{})
	go func() { wg.Wait(); close(returned) }()
	tstRecv(t, returned, "every goroutine to return after the sessions closed")
	close(unexpected)
	for err := range unexpected {
		t.Errorf("undocumented error: %v", err)
	}
	t.Logf("%d operations", ops.Load())
}
