package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/report"
	"github.com/sluicehq/sluice/bench/results"
)

// writeDockerSection rewrites the Docker section of the report at mdPath
// from a docker run's results, beside the loopback run at loopbackPath
// (left out when that file is absent), and the section's charts. Notes are
// first added to the docker run's results, which the load generator wrote
// without seeing the engine: they stay part of the record.
func writeDockerSection(dockerPath, loopbackPath, mdPath string, notes []string) error {
	d, err := results.Read(dockerPath)
	if err != nil {
		return err
	}
	if added := addNotes(d, notes); added {
		if err := d.WriteFile(dockerPath); err != nil {
			return err
		}
	}
	var loop *results.Results
	if l, err := results.Read(loopbackPath); err == nil {
		loop = l
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	prev, err := os.ReadFile(mdPath)
	if err != nil {
		return fmt.Errorf("read %s: %w (the Docker section is written into an existing report)", mdPath, err)
	}
	mdDir := filepath.Dir(mdPath)
	rel := func(p string) string {
		if r, err := filepath.Rel(mdDir, p); err == nil {
			return filepath.ToSlash(r)
		}
		return p
	}
	section, charts, err := report.DockerSection(report.DockerInputs{
		Docker:      d,
		DockerRel:   rel(dockerPath),
		Loopback:    loop,
		LoopbackRel: rel(loopbackPath),
		ChartsRel:   "bench/charts/docker",
	})
	if err != nil {
		return err
	}
	if err := writeCharts(filepath.Join(mdDir, "bench", "charts", "docker"), charts); err != nil {
		return err
	}
	text, err := report.ReplaceDocker(string(prev), section)
	if err != nil {
		return fmt.Errorf("%s: %w", mdPath, err)
	}
	if err := os.WriteFile(mdPath, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", mdPath, err)
	}
	fmt.Printf("%s: Docker section and %s regenerated from %s\n", mdPath, filepath.Join(mdDir, "bench", "charts", "docker"), dockerPath)
	// A run in which sluice measured nothing means the Docker path is
	// broken even though every step ran: say so with a failing status.
	for _, m := range d.Metrics {
		if s := m.Values[plan.Sluice]; s != nil && s.N > 0 {
			return nil
		}
	}
	return fmt.Errorf("%s has no figure for sluice: its notes say what failed", dockerPath)
}

// addNotes appends the notes r does not have yet, so that reporting twice
// does not repeat them; it reports whether any was added.
func addNotes(r *results.Results, notes []string) bool {
	have := map[string]bool{}
	for _, n := range r.Notes {
		have[n] = true
	}
	added := false
	for _, n := range notes {
		if n != "" && !have[n] {
			r.Notes = append(r.Notes, n)
			have[n] = true
			added = true
		}
	}
	return added
}
