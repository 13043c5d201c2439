package mux

import (
	"context"
	"crypto/sha256"
	"io"
	"net"
	"testing"
	"time"
)

// tstReaderPaths are the three ways a stream's data reaches its consumer:
// Read, WriteTo into any writer, and WriteTo into a TCP socket, where the
// session's reader writes arriving payloads into the socket itself (the
// sink). Each drains st to its end and returns the bytes moved.
func tstReaderPaths(t *testing.T) []struct {
	name  string
	sink  bool
	drain func(st *Stream) (int64, error)
} {
	return []struct {
		name  string
		sink  bool
		drain func(st *Stream) (int64, error)
	}{
		{"Read", false, func(st *Stream) (int64, error) {
			buf := make([]byte, 32<<10)
			var n int64
			for {
				k, err := st.Read(buf)
				n += int64(k)
				if err == io.EOF {
					return n, nil
				}
				if err != nil {
					return n, err
				}
			}
		}},
		{"WriteTo", false, func(st *Stream) (int64, error) {
			return st.WriteTo(sha256.New())
		}},
		{"WriteTo a socket", true, func(st *Stream) (int64, error) {
			dst, far := tcpPair(t)
			defer dst.Close()
			drained := tstCall(func() error {
				_, err := io.Copy(io.Discard, far)
				far.Close()
				return err
			})
			n, err := st.WriteTo(dst.(*net.TCPConn))
			dst.Close()
			<-drained
			return n, err
		}},
		{"Forward into a socket", true, func(st *Stream) (int64, error) {
			dst, far := tcpPair(t)
			defer dst.Close()
			drained := tstCall(func() error {
				_, err := io.Copy(io.Discard, far)
				far.Close()
				return err
			})
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			if err := st.Forward(dst.(*net.TCPConn), nil, func(n int64, err error) { done <- result{n, err} }); err != nil {
				return 0, err
			}
			r := <-done
			dst.Close()
			<-drained
			return r.n, r.err
		}},
	}
}

// TestWindowGrowsOnSlowLinkEveryReader: over a link with a 50 ms round
// trip, a stream whose consumer keeps up grows its receive window beyond
// the initial one (which alone caps it at 256 KiB per round trip), however
// the consumer takes the data.
func TestWindowGrowsOnSlowLinkEveryReader(t *testing.T) {
	for _, path := range tstReaderPaths(t) {
		t.Run(path.name, func(t *testing.T) {
			a, b := tstDelayLink(t, 25*time.Millisecond)
			cfg := DefaultConfig()
			c, s := tstSessions(t, a, b, cfg, cfg)
			st, err := c.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			total := 16 << 20
			sent := tstCall(func() error {
				_, err := io.Copy(st, &tstRepeatReader{left: total})
				if err == nil {
					err = st.CloseWrite()
				}
				return err
			})
			ctx, cancel := context.WithTimeout(context.Background(), tstTimeout)
			defer cancel()
			peer, err := s.AcceptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = peer.SetReadDeadline(time.Now().Add(3 * tstTimeout))
			if n, err := path.drain(peer); err != nil || n != int64(total) {
				t.Fatalf("moved %d of %d bytes: %v", n, total, err)
			}
			if err := tstRecv(t, sent, "the writer"); err != nil {
				t.Fatal(err)
			}
			window := tstWindow(peer)
			t.Logf("tuning RTT %s; receive window after %d MiB: %d KiB; sink bytes %d", s.tuningRTT(), total>>20, window>>10, s.Stats().SinkBytes)
			if path.sink && s.Stats().SinkBytes == 0 {
				t.Errorf("the session's reader wrote nothing into the socket: the sink path was not taken")
			}
			if window <= int64(cfg.InitialStreamWindow) {
				t.Errorf("the receive window stayed at %d over a %s round trip; it should grow when the consumer keeps up", window, s.tuningRTT())
			}
			if window > int64(cfg.MaxStreamWindow) {
				t.Errorf("the receive window grew to %d, beyond MaxStreamWindow %d", window, cfg.MaxStreamWindow)
			}
		})
	}
}
