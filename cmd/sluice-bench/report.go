package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/bench/report"
	"github.com/sluicehq/sluice/bench/results"
)

// readOptional returns a file's text, "" when it is absent.
func readOptional(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

// writeReport writes the charts and BENCHMARKS.md for a run.
func writeReport(res *results.Results, resultsPath, mdPath string) error {
	mdDir := filepath.Dir(mdPath)
	benchDir := filepath.Join(mdDir, "bench")
	prev, _ := os.ReadFile(mdPath)
	rel, err := filepath.Rel(mdDir, resultsPath)
	if err != nil {
		rel = resultsPath
	}
	charts := report.Charts(res)
	chartsDir := filepath.Join(benchDir, "charts")
	if err := os.MkdirAll(chartsDir, 0o755); err != nil {
		return fmt.Errorf("make charts directory %s: %w", chartsDir, err)
	}
	for _, c := range charts {
		if err := os.WriteFile(filepath.Join(chartsDir, c.File), []byte(c.SVG), 0o644); err != nil {
			return fmt.Errorf("write chart %s: %w", c.File, err)
		}
	}
	text, err := report.Markdown(report.Inputs{
		Results:    res,
		ResultsRel: filepath.ToSlash(rel),
		Charts:     charts,
		ChartsRel:  "bench/charts",
		Mux:        readOptional(filepath.Join(benchDir, "mux-results.md")),
		Notes:      readOptional(filepath.Join(benchDir, "notes.md")),
		Previous:   string(prev),
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(mdPath, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", mdPath, err)
	}
	fmt.Printf("%s and %s regenerated\n", mdPath, filepath.Join(benchDir, "charts"))
	return nil
}

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	from := fs.String("results", "bench/results.json", "results JSON to report")
	md := fs.String("md", "BENCHMARKS.md", "Markdown file to regenerate (charts go to bench/charts beside it)")
	table := fs.Bool("table", false, "print the terminal table instead")
	fs.Parse(args)
	res, err := results.Read(*from)
	if err != nil {
		return err
	}
	if *table {
		report.WriteTable(os.Stdout, res)
		return nil
	}
	return writeReport(res, *from, *md)
}
