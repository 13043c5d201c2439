package policy

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// BenchmarkRequest is the policy's own cost per request with basic auth,
// an IP allow rule and one CEL condition: what the edge adds to a request
// before it opens a stream.
func BenchmarkRequest(b *testing.B) {
	spec, err := Parse([]byte(`
on_tcp_connect:
  - actions: [{type: restrict-ips, config: {allow: [127.0.0.0/8, "::1"]}}]
on_http_request:
  - expressions: ["!req.path.startsWith('/public')"]
    actions: [{type: basic-auth, config: {credentials: ["bench:bench-password"]}}]
`), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	p, err := Compile(Options{}, Layer{Spec: spec})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "http://a.test/index.html", nil)
	r.SetBasicAuth("bench", "bench-password")
	auth := r.Header.Get("Authorization")
	client := netip.MustParseAddrPort("127.0.0.1:40000")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		r.Header.Set("Authorization", auth)
		if _, d := p.Request(w, r, client); d != nil {
			b.Fatalf("refused: %+v", d)
		}
	}
}
