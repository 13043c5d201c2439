package systems

import (
	"os"
	"testing"

	"github.com/sluicehq/sluice/bench/link"
	"github.com/sluicehq/sluice/bench/proc"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Systems started with a link re-execute this test binary as the link.
	if os.Getenv(proc.ChildEnv) == link.Role {
		link.RunChild()
	}
	goleak.VerifyTestMain(m)
}
