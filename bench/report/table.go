package report

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
)

// WriteTable prints the end-of-run table: per metric, each system's median
// with its ratio to direct and its spread over rounds.
func WriteTable(w io.Writer, r *results.Results) {
	systems := r.SystemNames()
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "metric\tunit")
	for _, s := range systems {
		fmt.Fprintf(tw, "\t%s", s)
	}
	fmt.Fprintln(tw)
	for _, m := range r.Metrics {
		fmt.Fprintf(tw, "%s\t%s", m.Title, m.Unit)
		for _, s := range systems {
			fmt.Fprintf(tw, "\t%s", cellText(m, s, s != plan.Direct))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w, "cells: median over rounds, (x ratio to direct), ±spread = (max-min)/median")
}

func cellText(m *results.Metric, system string, withRatio bool) string {
	s := m.Values[system]
	if s == nil || s.N == 0 {
		return "-"
	}
	out := results.Number(s.Median)
	if withRatio && s.RatioToDirect != 0 {
		out += fmt.Sprintf(" (x%.2f)", s.RatioToDirect)
	}
	if s.N > 1 {
		out += fmt.Sprintf(" ±%.0f%%", 100*s.Spread)
	}
	return out
}
