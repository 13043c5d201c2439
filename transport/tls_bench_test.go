package transport

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/sluicehq/sluice/internal/testutil"
)

// The floor under TLS between agent and edge: what the AEAD alone costs per
// record, and what a TLS connection costs over plain TCP in one process.
// Compare their CPU per GiB with the tunnel's to see how much of TLS's cost
// is the cipher and how much is everything around it.

// recordSize is a full TLS record's plaintext, what bulk data is sealed in.
const recordSize = 16 << 10

// BenchmarkAEAD seals and opens one full record with the two ciphers TLS 1.3
// offers here. crypto/tls picks AES-128-GCM when both ends have AES
// instructions (BenchmarkConnThroughput logs the suite).
func BenchmarkAEAD(b *testing.B) {
	key := make([]byte, 32)
	aesBlock, err := aes.NewCipher(key[:16])
	if err != nil {
		b.Fatal(err)
	}
	gcm, err := cipher.NewGCM(aesBlock)
	if err != nil {
		b.Fatal(err)
	}
	chacha, err := chacha20poly1305.New(key)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		aead cipher.AEAD
	}{{"AES-128-GCM", gcm}, {"ChaCha20-Poly1305", chacha}} {
		nonce := make([]byte, c.aead.NonceSize())
		ad := []byte{23, 3, 3, 0x40, 0x11} // a TLS 1.3 record header
		plain := make([]byte, recordSize+1)
		sealed := c.aead.Seal(nil, nonce, plain, ad)
		out := make([]byte, 0, len(sealed))
		b.Run(c.name+"/seal", func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			for b.Loop() {
				out = c.aead.Seal(out[:0], nonce, plain, ad)
			}
		})
		b.Run(c.name+"/open", func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			for b.Loop() {
				if _, err := c.aead.Open(out[:0], nonce, sealed, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkConnThroughput moves mux-sized batches (a 9-byte frame header
// and a 64 KiB payload) across a loopback TCP pair in this process, read
// through a 64 KiB buffer: in the clear with writev, through crypto/tls
// flattened into one buffer, through a TLSConn flattened (what the mux did
// before WriteBuffers), and through TLSConn.WriteBuffers. Besides MB/s it
// reports the process's CPU time per GiB moved (both ends: user and
// system), the figure to set beside the tunnel's.
func BenchmarkConnThroughput(b *testing.B) {
	const payload = 64 << 10
	hdr := make([]byte, 9)
	data := make([]byte, payload)
	flat := make([]byte, 0, len(hdr)+payload)
	flatten := func(c net.Conn) error {
		flat = append(append(flat[:0], hdr...), data...)
		_, err := c.Write(flat)
		return err
	}
	var iov net.Buffers
	for _, c := range []struct {
		name  string
		pair  func(b *testing.B) (w, r net.Conn)
		write func(c net.Conn) error
	}{
		{"tcp-writev", tcpPairB, func(c net.Conn) error {
			iov = append(iov[:0], hdr, data)
			_, err := iov.WriteTo(c)
			return err
		}},
		{"crypto-tls", func(b *testing.B) (net.Conn, net.Conn) {
			cl, sv, _ := tlsPairOver(b, false)
			b.Logf("cipher suite: %s", tls.CipherSuiteName(cl.ConnectionState().CipherSuite))
			return cl.Conn, sv.Conn
		}, flatten},
		{"TLSConn-flattened", tlsConnPairB, flatten},
		{"TLSConn.WriteBuffers", tlsConnPairB, func(c net.Conn) error {
			_, err := c.(*TLSConn).WriteBuffers([][]byte{hdr, data})
			return err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			w, r := c.pair(b)
			w.SetDeadline(time.Time{})
			r.SetDeadline(time.Time{})
			done := make(chan error, 1)
			start := make(chan int)
			go func() {
				buf := make([]byte, 64<<10)
				for n := range start {
					for left := n * (len(hdr) + payload); left > 0; {
						k, err := r.Read(buf)
						if err != nil {
							done <- err
							return
						}
						left -= k
					}
					done <- nil
				}
			}()
			defer close(start)
			b.SetBytes(payload)
			b.ResetTimer()
			cpu0 := testutil.CPUTime()
			start <- b.N
			for range b.N {
				if err := c.write(w); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			cpu := testutil.CPUTime() - cpu0
			b.StopTimer()
			b.ReportMetric(float64(cpu.Microseconds())/1000*float64(1<<30)/float64(b.N*payload), "cpu-ms/GiB")
		})
	}
}

func tlsConnPairB(b *testing.B) (net.Conn, net.Conn) {
	cl, sv, _ := tlsPairOver(b, false)
	return cl, sv
}

func tcpPairB(b *testing.B) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	got := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		got <- c
	}()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	r := <-got
	if r == nil {
		b.Fatal("accept failed")
	}
	b.Cleanup(func() { w.Close(); r.Close() })
	return w, r
}
