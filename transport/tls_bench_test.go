package transport

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/tls"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
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

// BenchmarkConnThroughput moves 64 KiB writes across a loopback TCP pair in
// this process, read through a 64 KiB buffer, in the clear, through
// crypto/tls, and through a TLSConn. Besides MB/s it reports the process's
// CPU time per GiB moved (both ends: user and system), the figure to set
// beside the tunnel's.
func BenchmarkConnThroughput(b *testing.B) {
	const chunk = 64 << 10
	for _, c := range []struct {
		name string
		pair func(b *testing.B) (w, r net.Conn)
	}{
		{"tcp", tcpPairB},
		{"crypto-tls", func(b *testing.B) (net.Conn, net.Conn) {
			cl, sv, _ := tlsPair(b)
			b.Logf("cipher suite: %s", tls.CipherSuiteName(cl.ConnectionState().CipherSuite))
			return cl.Conn, sv.Conn
		}},
		{"TLSConn", func(b *testing.B) (net.Conn, net.Conn) {
			cl, sv, _ := tlsPair(b)
			return cl, sv
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			w, r := c.pair(b)
			w.SetDeadline(time.Time{})
			r.SetDeadline(time.Time{})
			done := make(chan error, 1)
			start := make(chan int)
			go func() {
				buf := make([]byte, chunk)
				for n := range start {
					for left := n * chunk; left > 0; {
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
			data := make([]byte, chunk)
			b.SetBytes(chunk)
			b.ResetTimer()
			cpu0 := cpuTime()
			start <- b.N
			for range b.N {
				if _, err := w.Write(data); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			cpu := cpuTime() - cpu0
			b.StopTimer()
			b.ReportMetric(float64(cpu.Milliseconds())*float64(1<<30)/float64(b.N*chunk), "cpu-ms/GiB")
		})
	}
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

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
