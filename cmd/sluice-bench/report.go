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
	if err := writeCharts(filepath.Join(benchDir, "charts"), charts); err != nil {
		return err
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
	docker := fs.String("docker", "", "rewrite only BENCHMARKS.md's Docker section, from this docker run's results (make bench-docker: bench/out/docker.json)")
	var notes listFlag
	fs.Var(&notes, "note", "with -docker: a note to add to the docker run's results first (repeatable; make bench-docker adds what the engine saw, e.g. a container killed at its memory limit)")
	fs.Parse(args)
	if *docker != "" && !*table {
		return writeDockerSection(*docker, *from, *md, notes)
	}
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

// writeCharts writes each chart's SVG into dir.
func writeCharts(dir string, charts []report.Chart) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("make charts directory %s: %w", dir, err)
	}
	for _, c := range charts {
		if err := os.WriteFile(filepath.Join(dir, c.File), []byte(c.SVG), 0o644); err != nil {
			return fmt.Errorf("write chart %s: %w", c.File, err)
		}
	}
	return nil
}
