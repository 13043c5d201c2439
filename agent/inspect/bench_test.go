package inspect

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkCapture measures what the inspector adds to one request: the
// same handler served bare and through Wrap, side by side in one run. The
// ring is at its steady state (full, evicting) after the first few hundred
// iterations.
func BenchmarkCapture(b *testing.B) {
	for _, size := range []int{16, 32 << 10} {
		body := []byte(strings.Repeat("x", size))
		service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body)
		})
		in, err := New(Config{Addr: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		wrapped := in.Wrap(0, service)
		for _, c := range []struct {
			name string
			h    http.Handler
		}{{"off", service}, {"on", wrapped}} {
			b.Run(c.name+"/resp="+byteLabel(size), func(b *testing.B) {
				b.ReportAllocs()
				req := httptest.NewRequest("POST", "http://app.localhost/hook?x=1", nil)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("User-Agent", "bench")
				payload := `{"event":"paid"}`
				for b.Loop() {
					r := req.Clone(req.Context())
					r.Body = io.NopCloser(strings.NewReader(payload))
					c.h.ServeHTTP(discard{h: http.Header{}}, r)
				}
			})
		}
		in.Close()
	}
}

func byteLabel(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// discard is a ResponseWriter that throws the body away.
type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(p []byte) (int, error) { return len(p), nil }
func (d discard) WriteHeader(int)             {}
