package target

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

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

// Start listens on the given addresses ("127.0.0.1:0" picks ports).
func Start(tcpAddr, httpAddr string) (*Target, error) {
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
	var h [HeaderLen]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return
	}
	size := binary.BigEndian.Uint64(h[1:])
	switch h[0] {
	case OpUpload:
		buf := make([]byte, Chunk)
		if n, err := drain(c, buf, int64(size)); err != nil || n != int64(size) {
			return
		}
		c.Write([]byte{UploadAck})
		drain(c, buf[:4<<10], -1) // wait for the client's close
	case OpCount:
		buf := make([]byte, Chunk)
		var total uint64
		for {
			var fh [CountFrameHeader]byte
			if _, err := io.ReadFull(c, fh[:]); err != nil {
				return
			}
			n := binary.BigEndian.Uint32(fh[:])
			if n == 0 {
				break
			}
			got, err := drain(c, buf, int64(n))
			total += uint64(got)
			if err != nil || got != int64(n) {
				return
			}
		}
		var reply [8]byte
		binary.BigEndian.PutUint64(reply[:], total)
		c.Write(reply[:])
		drain(c, buf[:4<<10], -1)
	case OpDownload:
		buf := make([]byte, Chunk)
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
	case OpEcho:
		// A small buffer: echo carries ping-pong messages, and the memory
		// scenario holds thousands of these goroutines at once.
		buf := make([]byte, 4<<10)
		io.CopyBuffer(onlyWriter{c}, onlyReader{c}, buf)
	case OpSink:
		drain(c, make([]byte, Chunk), -1)
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
