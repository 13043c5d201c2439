package mux

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// tstBulk is how much the free stream moves in the head-of-line test.
func tstBulk() int {
	if tstRace {
		return 32 << 20
	}
	return 128 << 20
}

// tstRepeatReader yields n bytes cycling through tstPool.
type tstRepeatReader struct{ off, left int }

func (r *tstRepeatReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(len(p), r.left, len(tstPool)-r.off)]
	n := copy(p, tstPool[r.off:])
	r.off = (r.off + n) % len(tstPool)
	r.left -= n
	return n, nil
}

func tstSumRepeat(n int) [32]byte {
	h := sha256.New()
	_, _ = io.Copy(h, &tstRepeatReader{left: n})
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// TestHeadOfLine: streams whose readers stop, in each direction, do not
// keep another stream on the same session from moving a bulk transfer both
// ways to completion; once the readers resume, the stalled streams finish
// too, without loss.
func TestHeadOfLine(t *testing.T) {
	c, s := sessionPair(t, DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), tstTimeout)
	defer cancel()
	accept := func() *Stream {
		st, err := s.AcceptStream(ctx)
		if err != nil {
			t.Fatalf("AcceptStream: %v", err)
		}
		return st
	}
	open := func() *Stream {
		st, err := c.OpenStream(ctx)
		if err != nil {
			t.Fatalf("OpenStream: %v", err)
		}
		return st
	}

	// Stalled stream 1: the client writes, the server does not read.
	// Stalled stream 2: the server writes, the client does not read.
	const stalledSize = 4 << 20
	up, upPeer := open(), accept()
	down, downPeer := open(), accept()
	stalledWrites := []<-chan error{
		tstCall(func() error { _, err := up.Write(tstPool[:stalledSize/2]); return err }),
		tstCall(func() error { _, err := downPeer.Write(tstPool[:stalledSize/2]); return err }),
	}
	for _, ch := range stalledWrites {
		tstNotWithin(t, ch, 100*time.Millisecond, "a 2 MiB Write to a reader that stopped")
	}

	// The free stream moves tstBulk() bytes each way at once.
	bulk := tstBulk()
	want := tstSumRepeat(bulk)
	free, freePeer := open(), accept()
	_ = free.SetDeadline(time.Now().Add(3 * tstTimeout))
	_ = freePeer.SetDeadline(time.Now().Add(3 * tstTimeout))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, pair := range []struct {
		name string
		w, r *Stream
	}{{"client to server", free, freePeer}, {"server to client", freePeer, free}} {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := io.Copy(pair.w, &tstRepeatReader{left: bulk}); err != nil {
				errs <- fmt.Errorf("%s: writing: %w", pair.name, err)
				return
			}
			if err := pair.w.CloseWrite(); err != nil {
				errs <- fmt.Errorf("%s: CloseWrite: %w", pair.name, err)
			}
		}()
		go func() {
			defer wg.Done()
			h := sha256.New()
			n, err := io.Copy(h, pair.r)
			if err != nil {
				errs <- fmt.Errorf("%s: reading after %d of %d bytes (the stalled streams blocked it?): %w", pair.name, n, bulk, err)
				return
			}
			if n != int64(bulk) || !bytes.Equal(h.Sum(nil), want[:]) {
				errs <- fmt.Errorf("%s: %d bytes arrived, want %d, checksum ok %v", pair.name, n, bulk, bytes.Equal(h.Sum(nil), want[:]))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// The stalled writers are still blocked: nothing was lost on the way.
	for _, ch := range stalledWrites {
		tstNotWithin(t, ch, 0, "a Write to a reader that stopped")
	}
	// The readers resume and get everything.
	for _, st := range []struct {
		name string
		r    *Stream
	}{{"client to server", upPeer}, {"server to client", down}} {
		_ = st.r.SetReadDeadline(time.Now().Add(tstTimeout))
		got := make([]byte, stalledSize/2)
		if _, err := io.ReadFull(st.r, got); err != nil {
			t.Fatalf("stalled stream %s: reading after the reader resumed: %v", st.name, err)
		}
		if !bytes.Equal(got, tstPool[:stalledSize/2]) {
			t.Fatalf("stalled stream %s: the data arrived corrupted", st.name)
		}
	}
	for i, ch := range stalledWrites {
		if err := tstRecv(t, ch, "the stalled Write to finish"); err != nil {
			t.Errorf("stalled Write %d: %v", i, err)
		}
	}
}

// TestStalledReaderBoundsMemory: with readers that stop, what the receiver
// buffers never exceeds the window it granted, and the writers block
// instead of buffering on their side.
func TestStalledReaderBoundsMemory(t *testing.T) {
	tests := []struct {
		name                         string
		streams                      int
		initialWindow, sessionWindow uint32
		perStreamWrite               int
		wantBuffered                 int64 // what the receiver holds once every writer is blocked
	}{
		{"one stream, default window", 1, 256 << 10, 128 << 20, 1 << 20, 256 << 10},
		{"one stream, 1 MiB window", 1, 1 << 20, 128 << 20, 2 << 20, 1 << 20},
		{"eight streams", 8, 256 << 10, 128 << 20, 1 << 20, 8 * 256 << 10},
		// The streams' windows add up to 32 MiB; the session window
		// holds the total at 16 MiB, less the reserve that large writes
		// leave to small ones.
		{"session window binds", 8, 4 << 20, 16 << 20, 5 << 20, 16<<20 - creditReserve},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.InitialStreamWindow = tc.initialWindow
			cfg.MaxStreamWindow = max(tc.initialWindow, cfg.MaxStreamWindow)
			cfg.SessionWindow = tc.sessionWindow
			c, s := sessionPair(t, cfg)
			bound := min(int64(tc.streams)*int64(tc.initialWindow), int64(tc.sessionWindow))

			// Sample the receiver's counters as fast as possible while
			// the writers run into the window.
			var maxBuffered, maxInFlight atomic.Int64
			stop := make(chan struct{})
			sampled := tstCall(func() error {
				for {
					st := s.Stats()
					if st.RecvBuffered > maxBuffered.Load() {
						maxBuffered.Store(st.RecvBuffered)
					}
					if st.RecvInFlight > maxInFlight.Load() {
						maxInFlight.Store(st.RecvInFlight)
					}
					select {
					case <-stop:
						return nil
					default:
						time.Sleep(100 * time.Microsecond)
					}
				}
			})

			var writes []<-chan error
			payload := make([]byte, tc.perStreamWrite)
			for range tc.streams {
				st, err := c.OpenStream(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				writes = append(writes, tstCall(func() error {
					_, err := st.Write(payload)
					return err
				}))
			}
			// The receiver fills up to its window and no further.
			tstEventually(t, fmt.Sprintf("the receiver to buffer %d bytes", tc.wantBuffered), func() bool {
				return s.Stats().RecvBuffered >= tc.wantBuffered
			})
			// Every writer is blocked: none returns while credit is gone.
			for i, ch := range writes {
				tstNotWithin(t, ch, 100*time.Millisecond/time.Duration(tc.streams), fmt.Sprintf("Write %d of %d bytes beyond the window", i, tc.perStreamWrite))
			}
			close(stop)
			<-sampled
			st := s.Stats()
			if st.RecvBuffered != tc.wantBuffered {
				t.Errorf("RecvBuffered = %d with every writer blocked, want %d", st.RecvBuffered, tc.wantBuffered)
			}
			if got := maxBuffered.Load(); got > bound {
				t.Errorf("RecvBuffered reached %d; the windows allow %d", got, bound)
			}
			if got := maxInFlight.Load(); got > bound {
				t.Errorf("RecvInFlight reached %d; the windows allow %d", got, bound)
			}
			if cs := c.Stats(); cs.BytesSent > uint64(bound) {
				t.Errorf("the sender put %d bytes on the wire; the windows allow %d", cs.BytesSent, bound)
			}
			c.Close() // unblocks the writers
			for _, ch := range writes {
				_ = tstRecv(t, ch, "a blocked Write to return after Close")
			}
		})
	}
}

// TestSlowReaderBoundsMemory: a reader that keeps up only slowly lets the
// window grow by auto-tuning, but never beyond MaxStreamWindow.
func TestSlowReaderBoundsMemory(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxStreamWindow = 1 << 20
	c, s := sessionPair(t, cfg)
	cs, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	total := 8 << 20
	if tstRace {
		total = 4 << 20
	}
	sent := tstCall(func() error {
		_, err := io.Copy(cs, &tstRepeatReader{left: total})
		if err == nil {
			err = cs.CloseWrite()
		}
		return err
	})
	ss, err := s.AcceptStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = ss.SetReadDeadline(time.Now().Add(3 * tstTimeout))
	var maxBuffered int64
	h := sha256.New()
	buf := make([]byte, 16<<10)
	for read := 0; ; {
		if b := s.Stats().RecvBuffered; b > maxBuffered {
			maxBuffered = b
		}
		n, err := ss.Read(buf)
		h.Write(buf[:n])
		read += n
		if err == io.EOF {
			if read != total {
				t.Fatalf("EOF after %d bytes, want %d", read, total)
			}
			break
		}
		if err != nil {
			t.Fatalf("Read after %d bytes: %v", read, err)
		}
		if read%(256<<10) < n {
			time.Sleep(time.Millisecond) // fall behind now and then
		}
	}
	if err := tstRecv(t, sent, "the writer to finish"); err != nil {
		t.Fatal(err)
	}
	if want := tstSumRepeat(total); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("the data arrived corrupted")
	}
	if maxBuffered > int64(cfg.MaxStreamWindow) {
		t.Errorf("RecvBuffered reached %d; MaxStreamWindow is %d", maxBuffered, cfg.MaxStreamWindow)
	}
	t.Logf("largest RecvBuffered seen: %d (MaxStreamWindow %d)", maxBuffered, cfg.MaxStreamWindow)
}

// TestHeadOfLineManyStalled: stalled streams hold most of the session
// window; another stream must still move data through what is left, however
// little, whether the stalled streams filled up before it started or while
// it had read data not yet credited back.
func TestHeadOfLineManyStalled(t *testing.T) {
	tests := []struct {
		name      string
		stalled   int // streams of 256 KiB each
		freeFirst int // bytes the free stream moves before the others stall
	}{
		{"stalled first, 12.5 of 16 MiB", 50, 0},
		{"stalled first, all of 16 MiB that large writes may take", 63, 0},
		{"stalled after 1 MiB was read, 15 of 16 MiB", 60, 1 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.SessionWindow = frame.InitialSessionWindow
			cfg.InitialStreamWindow = frame.InitialStreamWindow
			// No auto-tuning: the free stream's window stays small, so the
			// stalled streams' share of the session window is exact.
			cfg.MaxStreamWindow = cfg.InitialStreamWindow
			c, s := sessionPair(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), tstTimeout)
			defer cancel()
			free, err := c.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			peer, err := s.AcceptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = peer.SetReadDeadline(time.Now().Add(tstTimeout))
			bulk := 8 << 20
			sent := tstCall(func() error {
				_, err := io.Copy(free, &tstRepeatReader{left: bulk})
				if err == nil {
					err = free.CloseWrite()
				}
				return err
			})
			if _, err := io.CopyN(io.Discard, peer, int64(tc.freeFirst)); err != nil {
				t.Fatalf("the free stream's first %d bytes: %v", tc.freeFirst, err)
			}

			var writes []<-chan error
			for range tc.stalled {
				st, err := c.OpenStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				writes = append(writes, tstCall(func() error {
					_, err := st.Write(tstPool[:frame.InitialStreamWindow+1])
					return err
				}))
			}
			// Each stalled stream fills its window, or together they take
			// all the session credit that large writes may (all but the
			// reserve left to small ones).
			held := int64(tc.stalled * frame.InitialStreamWindow)
			tstEventually(t, "the stalled streams to fill their windows", func() bool {
				stalledHeld := s.Stats().RecvBuffered - int64(tstUnread(peer))
				return stalledHeld == held ||
					stalledHeld > held-frame.InitialStreamWindow && c.Stats().SendCredit == creditReserve
			})

			n, err := io.Copy(io.Discard, peer)
			n += int64(tc.freeFirst)
			if err != nil || n != int64(bulk) {
				t.Fatalf("the free stream moved %d of %d bytes (%v) while stalled streams held %d of the %d-byte session window; Stats: receiver %+v, sender %+v",
					n, bulk, err, held, cfg.SessionWindow, s.Stats(), c.Stats())
			}
			if err := tstRecv(t, sent, "the free stream's writer"); err != nil {
				t.Fatal(err)
			}
			for i, ch := range writes {
				tstNotWithin(t, ch, 0, fmt.Sprintf("stalled Write %d", i))
			}
		})
	}
}

// tstUnread is a stream's unread byte count.
func tstUnread(st *Stream) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.rBuffered
}
