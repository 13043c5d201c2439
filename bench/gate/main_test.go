package gate

import (
	"testing"

	"github.com/sluicehq/sluice/bench/run"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The end-to-end tests run the harness, which re-executes this test
	// binary as the target service and the links.
	run.MaybeRunChild()
	goleak.VerifyTestMain(m)
}
