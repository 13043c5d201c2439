package results

import "testing"

func TestNumber(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{{1234.4, "1234"}, {99.95, "99.95"}, {100, "100"}, {42.25, "42.2"}, {3.14159, "3.14"}} {
		if got := Number(c.in); got != c.want {
			t.Errorf("Number(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}
