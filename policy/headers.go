package policy

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

type addHeaders struct {
	keys, values []string
}

func newAddHeaders(c *AddHeaders, ph Phase) (*addHeaders, error) {
	if len(c.Headers) == 0 {
		return nil, fmt.Errorf("headers: give at least one name: value")
	}
	a := &addHeaders{}
	for k, v := range c.Headers {
		if err := checkHeaderName(k); err != nil {
			return nil, err
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("the value of %s has characters a header cannot carry", k)
		}
		if ph == OnHTTPRequest && isIdentityHeader(k) {
			return nil, fmt.Errorf("%s is set by the edge from a verified sign-in only", k)
		}
		a.keys = append(a.keys, textproto.CanonicalMIMEHeaderKey(k))
		a.values = append(a.values, v)
	}
	return a, nil
}

func checkHeaderName(k string) error {
	if !httpguts.ValidHeaderFieldName(k) {
		return fmt.Errorf("%q is not a valid header name", k)
	}
	switch strings.ToLower(k) {
	case "host", "content-length", "transfer-encoding", "connection":
		return fmt.Errorf("%s is managed by the edge and cannot be changed by a policy", k)
	}
	return nil
}

func isIdentityHeader(k string) bool {
	k = textproto.CanonicalMIMEHeaderKey(k)
	return k == HeaderEmail || k == HeaderSubject || k == HeaderName
}

func (*addHeaders) kind() string { return "add-headers" }

func (a *addHeaders) set(h http.Header) {
	for i, k := range a.keys {
		h[k] = []string{a.values[i]}
	}
}

func (a *addHeaders) request(x *exchange) *Decision { a.set(x.r.Header); return nil }
func (a *addHeaders) response(h http.Header)        { a.set(h) }

type removeHeaders struct {
	keys []string
}

func newRemoveHeaders(c *RemoveHeaders, ph Phase) (*removeHeaders, error) {
	if len(c.Headers) == 0 {
		return nil, fmt.Errorf("headers: give at least one header name")
	}
	r := &removeHeaders{}
	for _, k := range c.Headers {
		if err := checkHeaderName(k); err != nil {
			return nil, err
		}
		r.keys = append(r.keys, textproto.CanonicalMIMEHeaderKey(k))
	}
	return r, nil
}

func (*removeHeaders) kind() string { return "remove-headers" }

func (r *removeHeaders) del(h http.Header) {
	for _, k := range r.keys {
		delete(h, k)
	}
}

func (r *removeHeaders) request(x *exchange) *Decision { r.del(x.r.Header); return nil }
func (r *removeHeaders) response(h http.Header)        { r.del(h) }
