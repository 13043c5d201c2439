package policy

import (
	"bufio"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// Identity headers: the edge sets them on requests of a visitor signed in
// with openid-connect and removes them from every other request, so the
// app can trust them.
const (
	HeaderEmail   = "X-Sluice-User-Email"
	HeaderSubject = "X-Sluice-User-Subject"
	HeaderName    = "X-Sluice-User-Name"
)

// ReservedPrefix is the path prefix the edge keeps for itself on every
// tunnel's host (the sign-in callback lives under it).
const ReservedPrefix = "/_sluice/"

// Request runs the on_tcp_connect and on_http_request rules for r, whose
// client is the real client address. When it returns a Decision, the
// policy has answered r itself and nothing must be sent to the agent.
// Otherwise r may have been changed (headers, URL, a verified body read
// into memory) and the returned writer, which applies the
// on_http_response rules, must be used in place of w.
func (p *Policy) Request(w http.ResponseWriter, r *http.Request, client netip.AddrPort) (http.ResponseWriter, *Decision) {
	if p == nil {
		return w, nil
	}
	if p.stripIdentity {
		r.Header.Del(HeaderEmail)
		r.Header.Del(HeaderSubject)
		r.Header.Del(HeaderName)
	}
	x := exchange{p: p, w: w, r: r, in: input{client: unmapAP(client), now: p.opts.Now(), r: r}}
	for _, rules := range [2][]*rule{p.conn, p.req} {
		for _, ru := range rules {
			x.rule = ru
			ok, err := x.matches(ru)
			if err != nil {
				x.action = "condition"
				return w, x.refuse(http.StatusInternalServerError, "Policy error",
					"The rule "+ru.name+" of this tunnel's policy could not be evaluated ("+err.Error()+"). Its owner should guard the condition, e.g. with 'name' in req.headers.")
			}
			if !ok {
				continue
			}
			for _, a := range ru.actions {
				x.action = a.kind()
				if d := a.(reqAction).request(&x); d != nil {
					return w, d
				}
			}
		}
	}
	if len(p.res) == 0 {
		return w, nil
	}
	return &responseWriter{ResponseWriter: w, x: x}, nil
}

const footer = "sluice edge policy"

// refuse writes one of the policy's refusal pages.
func (x *exchange) refuse(code int, title, text string) *Decision {
	x.p.opts.Page(x.w, x.r, code, title, text)
	return x.decide(code, true)
}

// retryAfter sets Retry-After to d rounded up to whole seconds (at least 1).
func retryAfter(h http.Header, d time.Duration) {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	h.Set("Retry-After", strconv.FormatInt(s, 10))
}

// responseWriter runs the on_http_response rules once, when the response's
// header is written.
type responseWriter struct {
	http.ResponseWriter
	x       exchange
	written bool
}

func (rw *responseWriter) WriteHeader(code int) {
	if !rw.written && (code >= 200 || code == http.StatusSwitchingProtocols) {
		rw.apply(code)
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *responseWriter) Write(b []byte) (int, error) {
	if !rw.written {
		rw.apply(http.StatusOK)
	}
	return rw.ResponseWriter.Write(b)
}

func (rw *responseWriter) apply(code int) {
	rw.written = true
	x := &rw.x
	x.in.status = code
	x.in.resHdr = rw.ResponseWriter.Header()
	for _, ru := range x.p.res {
		x.rule = ru
		if ok, err := x.matches(ru); err != nil || !ok {
			continue
		}
		for _, a := range ru.actions {
			a.(resAction).response(x.in.resHdr)
		}
	}
}

// Flush passes through, so streamed responses stay streamed.
func (rw *responseWriter) Flush() {
	if !rw.written {
		rw.apply(http.StatusOK)
	}
	http.NewResponseController(rw.ResponseWriter).Flush()
}

// Hijack passes through for protocol upgrades.
func (rw *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(rw.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }
