package inspect

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"time"
)

// Entry is one captured request and its response. Bodies are kept up to
// the inspector's body limit; the sizes count every byte that crossed.
type Entry struct {
	ID       uint64
	Tunnel   int // index of the tunnel in the agent's configuration
	Time     time.Time
	Duration time.Duration

	Method, URI, Host, Proto, RemoteAddr string
	ReqHeader                            http.Header
	ReqBody                              []byte
	ReqSize                              int64
	ReqTruncated                         bool

	Status        int
	RespHeader    http.Header
	RespBody      []byte
	RespSize      int64
	RespTruncated bool

	// ReplayOf is the ID of the entry this one replayed, 0 for traffic
	// that came through the tunnel.
	ReplayOf uint64
	// Err is set when the handler panicked or the client went away
	// before a response.
	Err string
	// RefusedBy names the edge's policy rule that answered the request
	// itself (see Refused): nothing of it crossed the tunnel but this.
	RefusedBy string

	size int64 // footprint, counted once when the ring takes the entry
}

// footprint is roughly what the entry holds in memory, for the ring's
// byte budget.
func (e *Entry) footprint() int64 {
	n := int64(len(e.ReqBody) + len(e.RespBody) + len(e.URI) + 256)
	for _, h := range []http.Header{e.ReqHeader, e.RespHeader} {
		for k, vs := range h {
			n += int64(len(k))
			for _, v := range vs {
				n += int64(len(v)) + 16
			}
		}
	}
	return n
}

// capBuffer keeps the first limit bytes written to it and counts them all.
type capBuffer struct {
	limit     int64
	buf       []byte
	size      int64
	truncated bool
}

func (b *capBuffer) add(p []byte) {
	b.size += int64(len(p))
	if room := b.limit - int64(len(b.buf)); room > 0 {
		if int64(len(p)) > room {
			b.buf = append(b.buf, p[:room]...)
			b.truncated = true
		} else {
			b.buf = append(b.buf, p...)
		}
	} else if len(p) > 0 {
		b.truncated = true
	}
}

// teeBody is a request body that keeps a copy of what the handler reads.
type teeBody struct {
	rc  io.ReadCloser
	cap *capBuffer
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	t.cap.add(p[:n])
	return n, err
}

func (t *teeBody) Close() error { return t.rc.Close() }

// captureWriter records the status, headers and body of a response on its
// way to the real writer. Unwrap keeps http.ResponseController (flush,
// deadlines) working; Hijack is explicit for upgrades.
type captureWriter struct {
	http.ResponseWriter
	status int
	header http.Header // snapshot taken when the header went out
	body   capBuffer
}

func (c *captureWriter) snapshot(code int) {
	if c.header == nil {
		c.status = code
		c.header = c.ResponseWriter.Header().Clone()
	}
}

func (c *captureWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		c.snapshot(code)
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(p []byte) (int, error) {
	c.snapshot(http.StatusOK)
	n, err := c.ResponseWriter.Write(p)
	c.body.add(p[:n])
	return n, err
}

func (c *captureWriter) Flush() {
	c.snapshot(http.StatusOK)
	http.NewResponseController(c.ResponseWriter).Flush()
}

func (c *captureWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(c.ResponseWriter).Hijack()
	if err == nil {
		c.snapshot(http.StatusSwitchingProtocols)
	}
	return conn, rw, err
}

func (c *captureWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// discardWriter is where a replay's response goes: the capture around it
// keeps what the inspector shows.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header {
	if d.h == nil {
		d.h = http.Header{}
	}
	return d.h
}
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
