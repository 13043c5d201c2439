package page

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriteEscapesAndSetsHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, 404, "No tunnel here", `No tunnel serves <script>x</script>.example`, "sluice edge")
	if rec.Code != 404 {
		t.Fatalf("status %d, want 404", rec.Code)
	}
	body := rec.Body.String()
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
		t.Fatalf("the client's text was not escaped: %s", body)
	}
	if !strings.Contains(body, "404 No tunnel here") || !strings.Contains(body, "sluice edge") {
		t.Fatalf("page lacks its title or footer: %s", body)
	}
	if got := rec.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Fatalf("Content-Type %q", got)
	}
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("nosniff header missing")
	}
}

func TestPrivateKeepsThePageToItsOrigin(t *testing.T) {
	rec := httptest.NewRecorder()
	Private(rec.Header())
	h := rec.Header()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if h.Get("Cache-Control") != "no-store" || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "same-origin" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", h)
	}
}
