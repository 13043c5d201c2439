package policy

import (
	"testing"

	"go.uber.org/goleak"
)

// The policy starts no goroutines of its own; the test provider's and the
// browser's end with their tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
