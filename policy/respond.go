package policy

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/net/http/httpguts"
)

type deny struct{ status int }

func newDeny(c *Deny) (*deny, error) {
	s := c.Status
	if s == 0 {
		s = http.StatusForbidden
	}
	if s < 400 || s > 599 {
		return nil, fmt.Errorf("status %d is not an error status (400-599)", s)
	}
	return &deny{status: s}, nil
}

func (*deny) kind() string               { return "deny" }
func (*deny) conn(x *exchange) *Decision { return x.decide(0, true) }
func (d *deny) request(x *exchange) *Decision {
	return x.refuse(d.status, http.StatusText(d.status), "This tunnel's policy refuses this request.")
}

type redirect struct {
	from   *regexp.Regexp
	to     string
	status int
}

func newRedirect(c *Redirect) (*redirect, error) {
	if c.To == "" {
		return nil, fmt.Errorf("to: give the address to redirect to")
	}
	r := &redirect{to: c.To, status: c.Status}
	if r.status == 0 {
		r.status = http.StatusFound
	}
	switch r.status {
	case 301, 302, 303, 307, 308:
	default:
		return nil, fmt.Errorf("status %d is not a redirect status (301, 302, 303, 307 or 308)", r.status)
	}
	if c.From != "" {
		re, err := regexp.Compile(c.From)
		if err != nil {
			return nil, fmt.Errorf("from: %v", err)
		}
		r.from = re
	}
	return r, nil
}

func (*redirect) kind() string { return "redirect" }

func (r *redirect) request(x *exchange) *Decision {
	to := r.to
	if r.from != nil {
		uri := x.r.URL.RequestURI()
		m := r.from.FindStringSubmatchIndex(uri)
		if m == nil {
			return nil
		}
		to = string(r.from.ExpandString(nil, r.to, uri, m))
	}
	if !httpguts.ValidHeaderFieldValue(to) {
		return nil
	}
	http.Redirect(x.w, x.r, to, r.status)
	return x.decide(r.status, false)
}

type customResponse struct {
	status       int
	body         string
	keys, values []string
	contentTyped bool
}

func newCustomResponse(c *CustomResponse) (*customResponse, error) {
	cr := &customResponse{status: c.Status, body: c.Body}
	if cr.status == 0 {
		cr.status = http.StatusOK
	}
	if cr.status < 200 || cr.status > 599 {
		return nil, fmt.Errorf("status %d is not a final HTTP status (200-599)", cr.status)
	}
	for k, v := range c.Headers {
		if err := checkHeaderName(k); err != nil {
			return nil, err
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("the value of %s has characters a header cannot carry", k)
		}
		if strings.EqualFold(k, "Content-Type") {
			cr.contentTyped = true
		}
		cr.keys = append(cr.keys, http.CanonicalHeaderKey(k))
		cr.values = append(cr.values, v)
	}
	return cr, nil
}

func (*customResponse) kind() string { return "custom-response" }

func (cr *customResponse) request(x *exchange) *Decision {
	h := x.w.Header()
	for i, k := range cr.keys {
		h.Set(k, cr.values[i])
	}
	if !cr.contentTyped {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	x.w.WriteHeader(cr.status)
	_, _ = x.w.Write([]byte(cr.body))
	return x.decide(cr.status, cr.status >= 400)
}

type urlRewrite struct {
	from *regexp.Regexp
	to   string
}

func newURLRewrite(c *URLRewrite) (*urlRewrite, error) {
	if c.From == "" || c.To == "" {
		return nil, fmt.Errorf("give from (a regular expression over the path and query) and to (its replacement)")
	}
	re, err := regexp.Compile(c.From)
	if err != nil {
		return nil, fmt.Errorf("from: %v", err)
	}
	return &urlRewrite{from: re, to: c.To}, nil
}

func (*urlRewrite) kind() string { return "url-rewrite" }

func (u *urlRewrite) request(x *exchange) *Decision {
	uri := x.r.URL.RequestURI()
	m := u.from.FindStringSubmatchIndex(uri)
	if m == nil {
		return nil
	}
	out := string(u.from.ExpandString(nil, u.to, uri, m))
	// The result is a path and query on the same host: anything else would
	// turn a rewrite into a proxy to elsewhere.
	nu, err := url.ParseRequestURI(out)
	if err != nil || nu.Host != "" || nu.Scheme != "" || !strings.HasPrefix(nu.Path, "/") {
		return x.refuse(http.StatusInternalServerError, "Policy error", "The url-rewrite of rule "+x.rule.name+" made "+out+", which is not a path.")
	}
	x.r.URL.Path, x.r.URL.RawPath, x.r.URL.RawQuery = nu.Path, nu.RawPath, nu.RawQuery
	x.r.RequestURI = x.r.URL.RequestURI()
	x.in.query, x.in.headers = nil, nil
	return nil
}
