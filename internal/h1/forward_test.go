package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriteHeadDropsHopByHopAndAddsExtra(t *testing.T) {
	r := httptest.NewRequest("GET", "http://public.example/a%20b?q=1", nil)
	r.Header.Set("Keep-Alive", "timeout=5")
	r.Header.Set("Proxy-Authorization", "secret")
	r.Header.Set("Te", "trailers, deflate")
	r.Header.Set("X-Skip", "no")
	r.Header.Set("Accept", "text/html")
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	if err := WriteHead(bw, r, "local:3000", func(k string) bool { return k == "X-Skip" }, [][2]string{{"X-Added", "1"}}); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	got, err := http.ReadRequest(bufio.NewReader(&b))
	if err != nil {
		t.Fatalf("the head does not parse: %v\n%s", err, b.String())
	}
	if got.Host != "local:3000" || got.URL.RequestURI() != "/a%20b?q=1" || got.Method != "GET" {
		t.Fatalf("request line/Host: %s %s Host %s", got.Method, got.URL.RequestURI(), got.Host)
	}
	for k, want := range map[string]string{"Accept": "text/html", "Te": "trailers", "X-Added": "1", "Keep-Alive": "", "Proxy-Authorization": "", "X-Skip": ""} {
		if v := got.Header.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
}

func TestCopyResponseDropsHopByHopAndKeepsTrailers(t *testing.T) {
	raw := "HTTP/1.1 201 Created\r\nConnection: X-Private\r\nX-Private: p\r\nKeep-Alive: timeout=5\r\nX-Public: yes\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: 9\r\n\r\n"
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	CopyResponse(rec, resp)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 201 || string(body) != "hi" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	for _, k := range []string{"X-Private", "Keep-Alive", "Connection", "Transfer-Encoding"} {
		if v := res.Header.Get(k); v != "" {
			t.Errorf("%s passed through: %q", k, v)
		}
	}
	if res.Header.Get("X-Public") != "yes" || res.Trailer.Get("X-Sum") != "9" {
		t.Errorf("header %v trailer %v", res.Header, res.Trailer)
	}
}
