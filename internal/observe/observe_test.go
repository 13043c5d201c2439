package observe

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStatusClass(t *testing.T) {
	for code, want := range map[int]string{101: "1xx", 200: "2xx", 404: "4xx", 599: "5xx", 99: "other", 600: "other", 0: "other"} {
		if got := StatusClass(code); got != want {
			t.Errorf("StatusClass(%d) = %q, want %q", code, got, want)
		}
	}
}

// TestStatusRecorder records the final status of each way a handler can
// answer, through a real server: informational responses are skipped, a
// 101 counts whether written or implied by a hijack.
func TestStatusRecorder(t *testing.T) {
	cases := []struct {
		name    string
		handler func(w http.ResponseWriter)
		want    int
	}{
		{"nothing written", func(w http.ResponseWriter) {}, 0},
		{"body only", func(w http.ResponseWriter) { io.WriteString(w, "x") }, 200},
		{"explicit status", func(w http.ResponseWriter) { w.WriteHeader(404) }, 404},
		{"early hints, then 204", func(w http.ResponseWriter) { w.WriteHeader(103); w.WriteHeader(204) }, 204},
		{"100 continue, then 500", func(w http.ResponseWriter) { w.WriteHeader(100); w.WriteHeader(500) }, 500},
		{"status written once", func(w http.ResponseWriter) { w.WriteHeader(302); w.WriteHeader(200) }, 302},
		{"flush before a write", func(w http.ResponseWriter) { http.NewResponseController(w).Flush() }, 200},
		{"101 written", func(w http.ResponseWriter) {
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "test")
			w.WriteHeader(101)
		}, 101},
		{"hijacked for an upgrade", func(w http.ResponseWriter) {
			c, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
			rw.Flush()
			c.Close()
		}, 101},
		{"hijacked after a status", func(w http.ResponseWriter) {
			w.WriteHeader(403)
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
		}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan int, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec := &StatusRecorder{ResponseWriter: w}
				tc.handler(rec)
				got <- rec.Status
			}))
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL, nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "test")
			if resp, err := srv.Client().Do(req); err == nil {
				resp.Body.Close()
			}
			if s := <-got; s != tc.want {
				t.Fatalf("recorded %d, want %d", s, tc.want)
			}
		})
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1000: "1000 B", 1024: "1 KiB", 1536: "1.5 KiB", 1 << 20: "1 MiB",
		5<<30 + 1<<29: "5.5 GiB", 3 << 40: "3 TiB",
	} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
	if strings.Contains(Bytes(1<<62), "?") {
		t.Error("the largest counts have no unit")
	}
}
