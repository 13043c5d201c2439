package testutil

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTCPPairCarriesBytesBothWays(t *testing.T) {
	a, b := TCPPair(t)
	go a.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	go b.Write([]byte("pong"))
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

func TestEchoServerEchoesAndHalfCloses(t *testing.T) {
	c, err := net.Dial("tcp", EchoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello" {
		t.Fatalf("echo %q, %v", got, err)
	}
}

func TestSumServiceAnswersChecksumAndCount(t *testing.T) {
	c, err := net.Dial("tcp", SumService(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 100_000)
	io.ReadFull(RandReader(7), data)
	c.Write(data)
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	want, n, _ := SumOf(bytes.NewReader(data))
	if string(got) != fmt.Sprintf("%s %d", want, n) || n != int64(len(data)) {
		t.Fatalf("answer %q, want %s %d", got, want, n)
	}
}

func TestRandReaderIsDeterministic(t *testing.T) {
	a, b, c := make([]byte, 64), make([]byte, 64), make([]byte, 64)
	io.ReadFull(RandReader(1), a)
	io.ReadFull(RandReader(1), b)
	io.ReadFull(RandReader(2), c)
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatal("same seed must give the same bytes, another seed other bytes")
	}
}

func TestSyncBufferConcurrentWrites(t *testing.T) {
	var s SyncBuffer
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); s.Write([]byte("x")) }()
	}
	wg.Wait()
	if s.String() != strings.Repeat("x", 8) {
		t.Fatalf("got %q", s.String())
	}
}

func TestFreeAddrIsBindable(t *testing.T) {
	ln, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}
