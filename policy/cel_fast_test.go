package policy

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// The Go form of a condition answers as CEL does, for every shape it
// takes and every request; other shapes keep to CEL.
func TestFastConditionsAgreeWithCEL(t *testing.T) {
	e, err := newEnvs()
	if err != nil {
		t.Fatal(err)
	}
	fast := []string{
		"req.path.startsWith('/admin')",
		"!req.path.startsWith('/public')",
		"req.path.endsWith('.php')",
		"req.url.contains('debug=1')",
		"req.method == 'POST'",
		"'GET' == req.method",
		"req.host != 'a.test'",
		"!!(req.path == '/')",
	}
	slow := []string{
		"req.path.startsWith('/a') && req.method == 'GET'",
		"req.path.matches('^/a')",
		"'x-debug' in req.headers",
		"req.path.size() > 3",
		"conn.client_ip == '192.0.2.1'",
		"inCidrRange(conn.client_ip, '10.0.0.0/8')",
	}
	reqs := []*http.Request{
		httptest.NewRequest("GET", "http://a.test/", nil),
		httptest.NewRequest("POST", "http://a.test/admin/users?debug=1", nil),
		httptest.NewRequest("GET", "http://b.test/public/x.php", nil),
		httptest.NewRequest("DELETE", "http://b.test/ADMIN", nil),
	}
	for _, set := range []struct {
		srcs []string
		inGo bool
	}{{fast, true}, {slow, false}} {
		for _, src := range set.srcs {
			c, err := compileCondition(e.req, src)
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			if (c.fast != nil) != set.inGo {
				t.Errorf("%s: Go form %v, want it only for the simple shapes", src, c.fast != nil)
				continue
			}
			if c.fast == nil {
				continue
			}
			for _, r := range reqs {
				in := input{client: netip.MustParseAddrPort("192.0.2.1:1"), now: time.Unix(0, 0), r: r}
				v, _, err := c.prg.Eval(&in)
				if err != nil {
					t.Fatalf("%s: CEL: %v", src, err)
				}
				if got, want := c.fast(&in), v.Value().(bool); got != want {
					t.Errorf("%s on %s %s: Go says %v, CEL %v", src, r.Method, r.URL, got, want)
				}
			}
		}
	}
}
