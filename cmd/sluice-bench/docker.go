package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/bench"
)

// writeDockerSection rewrites the Docker section of the report at mdPath
// from a docker run's results, beside the loopback run at loopbackPath
// (left out when that file is absent), and the section's charts.
func writeDockerSection(dockerPath, loopbackPath, mdPath string) error {
	d, err := bench.ReadResults(dockerPath)
	if err != nil {
		return err
	}
	var loop *bench.Results
	if l, err := bench.ReadResults(loopbackPath); err == nil {
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
	section, err := bench.DockerSection(bench.DockerInputs{
		Docker:      d,
		DockerRel:   rel(dockerPath),
		Loopback:    loop,
		LoopbackRel: rel(loopbackPath),
		ChartsDir:   filepath.Join(mdDir, "bench", "charts", "docker"),
		ChartsRel:   "bench/charts/docker",
	})
	if err != nil {
		return err
	}
	text, err := bench.ReplaceDocker(string(prev), section)
	if err != nil {
		return fmt.Errorf("%s: %w", mdPath, err)
	}
	if err := os.WriteFile(mdPath, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", mdPath, err)
	}
	fmt.Printf("%s: Docker section and %s regenerated from %s\n", mdPath, filepath.Join(mdDir, "bench", "charts", "docker"), dockerPath)
	return nil
}
