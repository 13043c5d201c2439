package run

import (
	"os"

	"github.com/sluicehq/sluice/bench/link"
	"github.com/sluicehq/sluice/bench/proc"
	"github.com/sluicehq/sluice/bench/target"
)

// MaybeRunChild turns this process into one of the harness's helper
// processes (the target service, a link) if the parent asked for one, and
// never returns in that case. Call it first in main, and in TestMain of
// packages that run the harness.
func MaybeRunChild() {
	switch os.Getenv(proc.ChildEnv) {
	case target.Role:
		target.RunChild()
	case link.Role:
		link.RunChild()
	}
}
