package mux

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"testing"
	"time"
)

// WriteTo into a TCP socket: payloads that arrive while WriteTo waits are
// written into the socket by the session's reader; a socket that fills up
// (its reader pauses) sends the rest back through WriteTo. Either way every
// byte arrives once, in order, and WriteTo counts them all.
func TestStreamWriteToSocket(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pauseRead time.Duration // the socket's reader pauses this long first
	}{
		{"socket keeps up", 0},
		{"socket fills up", 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := sessionPair(t, DefaultConfig())
			dst, far := tcpPair(t)
			defer dst.Close()
			defer far.Close()
			data := make([]byte, 8<<20)
			rand.Read(data)
			want := sha256.Sum256(data)

			st, err := c.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				// Small writes with pauses, so that many payloads find
				// WriteTo waiting, then the rest in bulk.
				for i := 0; i < 64; i++ {
					st.Write(data[i*1024 : (i+1)*1024])
					time.Sleep(time.Millisecond)
				}
				st.Write(data[64*1024:])
				st.CloseWrite()
			}()
			peer, err := s.AcceptStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, err := peer.WriteTo(dst)
				dst.(*net.TCPConn).CloseWrite()
				done <- result{n, err}
			}()
			time.Sleep(tc.pauseRead)
			far.SetReadDeadline(time.Now().Add(30 * time.Second))
			got, err := io.ReadAll(far)
			if err != nil {
				t.Fatalf("reading the socket: %v", err)
			}
			r := <-done
			if r.err != nil || r.n != int64(len(data)) {
				t.Fatalf("WriteTo = %d, %v; want %d, nil", r.n, r.err, len(data))
			}
			if sha256.Sum256(got) != want {
				i := 0
				for i < len(got) && i < len(data) && got[i] == data[i] {
					i++
				}
				t.Fatalf("socket got %d bytes, want %d; first difference at %d", len(got), len(data), i)
			}
			if !bytes.Equal(got[:16], data[:16]) {
				t.Fatal("start of data differs")
			}
			sunk := s.Stats().SinkBytes
			if sunk == 0 || sunk > uint64(len(data)) {
				t.Fatalf("the session's reader wrote %d bytes into the socket; want some, at most %d", sunk, len(data))
			}
			t.Logf("%d of %d bytes written by the session's reader", sunk, len(data))
			st.Close()
			peer.Close()
		})
	}
}
