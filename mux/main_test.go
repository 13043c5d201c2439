package mux

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test must leave no goroutine behind: a session's reader, writer and
// keepalive loops, and every goroutine a test starts, end with the test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
