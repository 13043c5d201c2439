package main

import (
	"github.com/sluicehq/sluice/internal/testutil"

	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDevFailsWhenTheGivenPortIsTaken: an --http address the user chose is
// not moved; only the default may be.
func TestDevFailsWhenTheGivenPortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	out := &lineWriter{lines: make(chan string, 10)}
	var stderr lockedWriter
	err = runDev(context.Background(), []string{"--demo", "--http", taken.Addr().String()}, out, &stderr)
	if err == nil || exitCode(err) != exitFailure || !strings.Contains(err.Error(), taken.Addr().String()) || !strings.Contains(err.Error(), "--http") {
		t.Fatalf("dev on a taken --http: %v (exit %d), want exit %d naming the address and --http", err, exitCode(err), exitFailure)
	}
}

func TestDemoPageAnswersOnlyReads(t *testing.T) {
	for _, local := range []string{"", "localhost:3000"} {
		h := demoHandler(local)
		for method, want := range map[string]int{"GET": 200, "HEAD": 200, "POST": 503, "PUT": 503, "DELETE": 503, "PATCH": 503} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, "/api/items", strings.NewReader("{}")))
			if rec.Code != want {
				t.Errorf("demo(%q) %s: %d, want %d", local, method, rec.Code, want)
			}
			if want == 503 && !strings.Contains(rec.Body.String(), "not") {
				t.Errorf("demo(%q) %s body %q does not say the app is not there", local, method, rec.Body.String())
			}
			if want == 503 && local != "" && !strings.Contains(rec.Body.String(), "local app is not running") {
				t.Errorf("demo(%q) %s body %q does not say the local app is not running", local, method, rec.Body.String())
			}
		}
	}
}

type lockedWriter struct{ testutil.SyncBuffer }
