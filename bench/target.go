package bench

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// The target service speaks a tiny protocol so one TCP port serves every
// scenario: the client sends a 9-byte header (an op byte and a big-endian
// uint64 size), then the op runs until it is done or the client closes.
const (
	opUpload   = 'U' // client sends size bytes; target answers one byte once all arrived
	opDownload = 'D' // target sends size bytes
	opEcho     = 'E' // target echoes every byte until EOF
	opSink     = 'S' // target discards everything until EOF
	headerLen  = 9
	ioChunk    = 128 << 10
	uploadAck  = 'K'
	httpBody   = "sluice-bench ok\n"
	// HTTPHostName is the virtual host the HTTP scenario asks for; tunnels
	// route it to the target's HTTP port.
	HTTPHostName = "bench.localhost"
)

func writeHeader(w io.Writer, op byte, size uint64) error {
	var h [headerLen]byte
	h[0] = op
	binary.BigEndian.PutUint64(h[1:], size)
	_, err := w.Write(h[:])
	return err
}

// Target is the service every tunnel forwards to: a TCP port for the
// byte-moving scenarios and an HTTP port for the HTTP scenario.
type Target struct {
	tcp, http net.Listener
	srv       *http.Server
	wg        sync.WaitGroup
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	closed    bool
}

// StartTarget listens on the given addresses ("127.0.0.1:0" picks ports).
func StartTarget(tcpAddr, httpAddr string) (*Target, error) {
	tl, err := net.Listen("tcp", tcpAddr)
	if err != nil {
		return nil, fmt.Errorf("target: listen tcp %s: %w (pick a free address)", tcpAddr, err)
	}
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		tl.Close()
		return nil, fmt.Errorf("target: listen http %s: %w (pick a free address)", httpAddr, err)
	}
	t := &Target{tcp: tl, http: hl, conns: map[net.Conn]struct{}{}}
	body := []byte(httpBody)
	t.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(body)
		}),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          nil,
	}
	t.wg.Add(2)
	go func() { defer t.wg.Done(); t.srv.Serve(hl) }()
	go func() { defer t.wg.Done(); t.acceptLoop() }()
	return t, nil
}

// TCPAddr is where the byte-moving scenarios connect.
func (t *Target) TCPAddr() string { return t.tcp.Addr().String() }

// HTTPAddr is the target's HTTP server.
func (t *Target) HTTPAddr() string { return t.http.Addr().String() }

// Close stops both listeners and every open connection.
func (t *Target) Close() error {
	t.mu.Lock()
	t.closed = true
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.tcp.Close()
	t.srv.Close()
	t.wg.Wait()
	return nil
}

func (t *Target) acceptLoop() {
	for {
		c, err := t.tcp.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if strings.Contains(err.Error(), "too many open files") {
				// Out of descriptors: back off instead of spinning; the
				// client sees the failure in its success rate.
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.conns[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.wg.Done()
			serveTargetConn(c)
			t.mu.Lock()
			delete(t.conns, c)
			t.mu.Unlock()
			c.Close()
		}()
	}
}

func serveTargetConn(c net.Conn) {
	var h [headerLen]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return
	}
	size := binary.BigEndian.Uint64(h[1:])
	switch h[0] {
	case opUpload:
		buf := make([]byte, ioChunk)
		if n, err := drain(c, buf, int64(size)); err != nil || n != int64(size) {
			return
		}
		c.Write([]byte{uploadAck})
		drain(c, buf[:4<<10], -1) // wait for the client's close
	case opDownload:
		buf := make([]byte, ioChunk)
		for size > 0 {
			n := uint64(len(buf))
			if size < n {
				n = size
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
			size -= n
		}
		drain(c, buf[:4<<10], -1)
	case opEcho:
		// A small buffer: echo carries ping-pong messages, and the memory
		// scenario holds thousands of these goroutines at once.
		buf := make([]byte, 4<<10)
		io.CopyBuffer(onlyWriter{c}, onlyReader{c}, buf)
	case opSink:
		drain(c, make([]byte, ioChunk), -1)
	}
}

// drain reads and discards up to limit bytes (all of them when limit < 0)
// through buf. io.Discard's ReadFrom would use its own 8 KiB buffer, which
// costs the target more syscalls than the tunnels it measures.
func drain(r io.Reader, buf []byte, limit int64) (int64, error) {
	var total int64
	for limit < 0 || total < limit {
		b := buf
		if limit >= 0 && int64(len(b)) > limit-total {
			b = b[:limit-total]
		}
		n, err := r.Read(b)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// onlyReader/onlyWriter hide ReadFrom/WriteTo so io.Copy uses our buffer
// (and, for echo, does not try to splice a socket onto itself).
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// runTargetChild serves until stdin closes (the parent died or stopped us).
func runTargetChild() {
	t, err := StartTarget(envOr("SLUICE_BENCH_TCP", "127.0.0.1:0"), envOr("SLUICE_BENCH_HTTP", "127.0.0.1:0"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Printf("ready tcp=%s http=%s\n", t.TCPAddr(), t.HTTPAddr())
	io.Copy(io.Discard, os.Stdin)
	t.Close()
	os.Exit(0)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// parseReady reads the child's "ready tcp=... http=..." line.
func parseReady(r *bufio.Reader) (tcpAddr, httpAddr string, err error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", "", fmt.Errorf("target did not report ready: %w", err)
	}
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "tcp="); ok {
			tcpAddr = v
		}
		if v, ok := strings.CutPrefix(f, "http="); ok {
			httpAddr = v
		}
	}
	if tcpAddr == "" || httpAddr == "" {
		return "", "", fmt.Errorf("target printed %q, want \"ready tcp=ADDR http=ADDR\"", strings.TrimSpace(line))
	}
	return tcpAddr, httpAddr, nil
}
