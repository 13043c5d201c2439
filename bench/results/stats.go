package results

import (
	"math"
	"sort"
)

// Summary condenses the per-round samples of one metric for one system.
type Summary struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Mean   float64 `json:"mean"`
	// Spread is (max-min)/median: how far apart the rounds landed, as a
	// fraction of the figure we report. 0 when there is one sample.
	Spread float64 `json:"spread"`
}

// Summarize computes a Summary; NaN samples (a round that produced nothing)
// are ignored so one failed round does not poison the median.
func Summarize(samples []float64) Summary {
	vals := make([]float64, 0, len(samples))
	for _, v := range samples {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		return Summary{}
	}
	sort.Float64s(vals)
	s := Summary{N: len(vals), Min: vals[0], Max: vals[len(vals)-1]}
	var sum float64
	for _, v := range vals {
		sum += v
	}
	s.Mean = sum / float64(len(vals))
	mid := len(vals) / 2
	if len(vals)%2 == 1 {
		s.Median = vals[mid]
	} else {
		s.Median = (vals[mid-1] + vals[mid]) / 2
	}
	if s.Median != 0 {
		s.Spread = (s.Max - s.Min) / math.Abs(s.Median)
	}
	return s
}

// Best returns the best sample: the largest when higher is better, else the
// smallest.
func (s Summary) Best(higherIsBetter bool) float64 {
	if higherIsBetter {
		return s.Max
	}
	return s.Min
}

// Ratio returns a/b, or NaN when b is zero or either side is missing.
func Ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}
