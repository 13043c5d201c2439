// Package observe is what the edge and the agent share in observing the
// HTTP traffic they carry: a ResponseWriter that records a response's
// status, the status classes and duration buckets of their request metrics,
// and byte counts written for people.
package observe

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
)

// DurationBuckets are the histogram buckets, in seconds, of proxied HTTP
// requests: from cache hits to slow APIs.
var DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// StatusClass turns 404 into "4xx"; anything outside 100-599 is "other".
func StatusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}

// StatusRecorder remembers the final status of a response written through
// it. Informational responses (100 Continue, 103 Early Hints) are not
// final and are skipped; 101 Switching Protocols is final, whether written
// with WriteHeader or implied by hijacking the connection for an upgrade
// (a reverse proxy writes the 101 onto the hijacked connection itself).
// Unwrap keeps http.ResponseController (deadlines, full duplex) working
// through it.
type StatusRecorder struct {
	http.ResponseWriter
	// Status is the final status, 0 while none was written.
	Status int
}

func (s *StatusRecorder) WriteHeader(code int) {
	if s.Status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.Status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *StatusRecorder) Write(b []byte) (int, error) {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush sends what was written; headers flushed before any write go out
// as 200.
func (s *StatusRecorder) Flush() {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	http.NewResponseController(s.ResponseWriter).Flush()
}

// Hijack takes the connection over; with no status written, it is an
// upgrade's 101.
func (s *StatusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil && s.Status == 0 {
		s.Status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func (s *StatusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Bytes writes a byte count for people: "512 B", "1 MiB" for an exact
// multiple, "1.5 GiB" otherwise.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit || m <= -unit; m /= unit {
		div *= unit
		exp++
	}
	suffix := " " + string("KMGTPE"[exp]) + "iB"
	if n%div == 0 {
		return strconv.FormatInt(n/div, 10) + suffix
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + suffix
}
