package server

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

// fastRequest reports whether a public request takes serveFast: a GET or
// HEAD with no body and no upgrade, which is most of what a web app serves.
func fastRequest(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.Body == nil || r.Body == http.NoBody) && r.ContentLength == 0 &&
		r.Header.Get("Upgrade") == "" && r.Header.Get("Connection") == ""
}

// serveFast proxies a fastRequest without httputil.ReverseProxy: the
// request head is written straight from the public request onto a pooled
// stream and the response copied back, with the same header rules (hop-by-hop
// headers dropped both ways, forwarding headers set as forwarded.go says)
// and no clone of the request or its headers.
func (s *Server) serveFast(w http.ResponseWriter, r *http.Request, t *tunnel) {
	f := s.forwardedFor(r)
	resp, err := t.tr.Do(r, func(bw *bufio.Writer) error { return writeHead(bw, r, &f) })
	if err != nil {
		s.proxyErrorFor(w, r, t, err)
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, vv := range resp.Header {
		if !isHop(k) {
			h[k] = vv
		}
	}
	if c := resp.Header["Connection"]; len(c) > 0 {
		removeListed(h, c)
	}
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	if resp.ContentLength == -1 {
		// A body of unknown length is a stream (events, long polls): every
		// piece goes out as it comes.
		copyFlushing(w, resp.Body)
	} else {
		buf := relay.BufferPool{}.Get()
		io.CopyBuffer(writerOnly{w}, resp.Body, buf)
		relay.BufferPool{}.Put(buf)
	}
	for k, vv := range resp.Trailer {
		h[k] = vv
	}
}

// writeHead writes r's request line and headers for the agent.
func writeHead(bw *bufio.Writer, r *http.Request, f *forwarded) error {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(r.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	listed := r.Header["Connection"] // empty on this path, but cheap to honour
	for k, vv := range r.Header {
		if isHop(k) || isForwarded(k) || (len(listed) > 0 && inList(listed, k)) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if te := r.Header["Te"]; len(te) > 0 && httpguts.HeaderValuesContainsToken(te, "trailers") {
		bw.WriteString("Te: trailers\r\n") // end to end in meaning, as ReverseProxy keeps it
	}
	for _, kv := range [...][2]string{{"X-Forwarded-For", f.xff}, {"X-Forwarded-Host", f.host}, {"X-Forwarded-Proto", f.proto}, {"Forwarded", f.fwd}, {"X-Real-Ip", f.realIP}} {
		bw.WriteString(kv[0])
		bw.WriteString(": ")
		bw.WriteString(kv[1])
		bw.WriteString("\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

func isHop(k string) bool {
	for _, h := range hopHeaders {
		if k == h {
			return true
		}
	}
	return false
}

func isForwarded(k string) bool {
	for _, h := range forwardedHeaders {
		if k == h {
			return true
		}
	}
	return false
}

// inList reports whether the Connection header values name k.
func inList(conn []string, k string) bool {
	for _, v := range conn {
		for _, f := range strings.Split(v, ",") {
			if textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(f)) == k {
				return true
			}
		}
	}
	return false
}

func removeListed(h http.Header, conn []string) {
	for _, v := range conn {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
}

func copyFlushing(w http.ResponseWriter, body io.Reader) {
	rc := http.NewResponseController(w)
	buf := relay.BufferPool{}.Get()
	defer relay.BufferPool{}.Put(buf)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

// writerOnly hides http.ResponseWriter's ReadFrom, which would bypass the
// pooled buffer with one of its own.
type writerOnly struct{ io.Writer }
