//go:build !unix

package trywrite

import (
	"testing"

	"github.com/sluicehq/sluice/internal/testutil"
)

// Without a non-blocking write on a socket's descriptor there is no Writer:
// callers see nil and write the blocking way.
func TestNewIsNilWithoutNonBlockingWrites(t *testing.T) {
	a, _ := testutil.TCPPair(t)
	if w := New(a); w != nil {
		t.Fatal("New returned a Writer on a platform without non-blocking socket writes")
	}
}
