package run

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The harness re-executes its own binary as the target service and the
	// links; in tests that binary is this test executable.
	MaybeRunChild()
	goleak.VerifyTestMain(m)
}
