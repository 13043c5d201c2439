package h1

import (
	"bufio"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/sluicehq/sluice/relay"
)

// hopHeaders are the hop-by-hop headers (RFC 9110 section 7.6.1) a proxy
// never forwards, the same list httputil.ReverseProxy removes.
var hopHeaders = [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// Forwardable reports whether a proxy may forward an inbound request with
// Pool.Do, WriteHead and CopyResponse instead of httputil.ReverseProxy: a
// GET or HEAD with no body, no upgrade and no Connection options, which is
// most of what a web app serves. A zero ContentLength means no body, as
// ReverseProxy takes it too: an HTTP/2 request's Body is never http.NoBody.
func Forwardable(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.ContentLength == 0 &&
		r.Header.Get("Upgrade") == "" && r.Header.Get("Connection") == ""
}

// WriteHead writes the request head of a Forwardable inbound request r for
// the next hop: its request line, Host, every end-to-end header for which
// skip (if set) is false, Te: trailers when asked for, then extra.
func WriteHead(bw *bufio.Writer, r *http.Request, host string, skip func(string) bool, extra [][2]string) error {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(r.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vv := range r.Header {
		if isHop(k) || (skip != nil && skip(k)) {
			continue
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
	if te := r.Header["Te"]; len(te) > 0 && httpguts.HeaderValuesContainsToken(te, "trailers") {
		writeField(bw, "Te", "trailers") // end to end in meaning, as ReverseProxy keeps it
	}
	for _, kv := range extra {
		writeField(bw, kv[0], kv[1])
	}
	_, err := bw.WriteString("\r\n")
	return err
}

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// CopyResponse writes resp to w: its end-to-end headers (hop-by-hop ones
// and those its Connection header names dropped), status, body (flushed
// piece by piece when its length is unknown: a stream) and trailers. It
// closes the body. An error means the body broke off midway: the caller
// must abort the response (panic with http.ErrAbortHandler, as
// ReverseProxy does) so the client does not take it as complete.
func CopyResponse(w http.ResponseWriter, resp *http.Response) error {
	defer resp.Body.Close()
	h := w.Header()
	for k, vv := range resp.Header {
		if !isHop(k) {
			h[k] = vv
		}
	}
	for _, v := range resp.Header["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, textproto.CanonicalMIMEHeaderKey(k))
		}
		h["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	buf := relay.BufferPool{}.Get()
	var err error
	if resp.ContentLength == -1 {
		err = copyFlushing(w, resp.Body, buf)
	} else {
		_, err = io.CopyBuffer(writerOnly{w}, resp.Body, buf)
	}
	relay.BufferPool{}.Put(buf)
	if err != nil {
		return err
	}
	for k, vv := range resp.Trailer {
		h[k] = vv
	}
	return nil
}

func isHop(k string) bool {
	for _, h := range hopHeaders {
		if k == h {
			return true
		}
	}
	return false
}

// copyFlushing sends every piece of a stream (events, long polls) as it
// comes.
func copyFlushing(w http.ResponseWriter, body io.Reader, buf []byte) error {
	rc := http.NewResponseController(w)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			rc.Flush()
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// writerOnly hides http.ResponseWriter's ReadFrom, which would bypass the
// pooled buffer with one of its own.
type writerOnly struct{ io.Writer }
