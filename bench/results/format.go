package results

import (
	"fmt"
	"math"
)

// Number prints a figure with as many digits as its size deserves.
func Number(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "n/a"
	case a >= 99 && a < 100:
		// Keep 99.95% from printing as 100.0 (success rates).
		return fmt.Sprintf("%.2f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
