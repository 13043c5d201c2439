package mux

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testutil"
)

// tcpPair is the two ends of a loopback TCP connection, closed at cleanup.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	a, b := testutil.TCPPair(t)
	return a, b
}

// sessionPair is a client and a server session over loopback TCP with
// one configuration for both.
func sessionPair(t testing.TB, cfg Config) (*Session, *Session) {
	t.Helper()
	return tstPair(t, cfg, cfg)
}

func TestSmokeEcho(t *testing.T) {
	c, s := sessionPair(t, DefaultConfig())
	go func() {
		for {
			st, err := s.AcceptStream(context.Background())
			if err != nil {
				return
			}
			go func() {
				io.Copy(st, st)
				st.CloseWrite()
			}()
		}
	}()
	data := make([]byte, 8<<20)
	rand.Read(data)
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		st.Write(data)
		st.CloseWrite()
	}()
	st.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo mismatch: got %d bytes", len(got))
	}
	st.Close()
	t.Logf("stats client %+v", c.Stats())
}
