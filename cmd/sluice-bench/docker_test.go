package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/bench"
)

// writeDockerRun writes a docker run's results with one figure per system
// given.
func writeDockerRun(t *testing.T, path string, figures map[string]float64) {
	t.Helper()
	r := &bench.Results{Schema: bench.SchemaVersion, Source: "docker", Preset: "quick", Command: "make bench-docker"}
	r.Params, _ = bench.PresetParams("quick")
	m := &bench.Metric{ID: bench.MUpload, Scenario: bench.ScenThroughput, Title: "One connection, upload", Unit: "MB/s", HigherIsBetter: true, Values: map[string]*bench.Series{}}
	for _, s := range []string{bench.SystemDirect, bench.SystemSluice} {
		r.Systems = append(r.Systems, bench.SystemResult{Name: s, Version: "test"})
		if v, ok := figures[s]; ok {
			m.Values[s] = &bench.Series{Samples: []float64{v}}
		}
	}
	r.Metrics = []*bench.Metric{m}
	r.Finalize()
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
}

func TestWriteDockerSection(t *testing.T) {
	dir := t.TempDir()
	docker, md := filepath.Join(dir, "bench", "out", "docker.json"), filepath.Join(dir, "BENCHMARKS.md")
	os.MkdirAll(filepath.Dir(docker), 0o755)
	writeDockerRun(t, docker, map[string]float64{bench.SystemDirect: 1000, bench.SystemSluice: 300})
	os.WriteFile(md, []byte("# Benchmarks\n\n## Docker\n\nold prose\n\n## Multiplexer (in-process)\n\nmux\n"), 0o644)
	note := "container frps: killed by the kernel at its memory limit (OOM, exit 137)"

	for range 2 { // a second report must not repeat the note
		if err := writeDockerSection(docker, filepath.Join(dir, "bench", "results.json"), md, []string{note}); err != nil {
			t.Fatal(err)
		}
	}
	text, _ := os.ReadFile(md)
	for _, want := range []string{bench.DockerBegin, "| One connection, upload | MB/s | 1000 | 300 | 0.30 |", "- " + note, "## Multiplexer (in-process)\n\nmux\n"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(string(text), "old prose") {
		t.Error("the old Docker prose was kept")
	}
	r, err := bench.ReadResults(docker)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Notes) != 1 || r.Notes[0] != note {
		t.Errorf("docker.json notes = %q, want the engine's note once", r.Notes)
	}
	if _, err := os.Stat(filepath.Join(dir, "bench", "charts", "docker", "throughput.svg")); err != nil {
		t.Errorf("chart not written beside the report: %v", err)
	}
}

// A run in which sluice measured nothing is a broken Docker path, even
// though every step ran.
func TestWriteDockerSectionFailsWithoutSluiceFigures(t *testing.T) {
	dir := t.TempDir()
	docker, md := filepath.Join(dir, "docker.json"), filepath.Join(dir, "BENCHMARKS.md")
	writeDockerRun(t, docker, map[string]float64{bench.SystemDirect: 1000})
	os.WriteFile(md, []byte("# Benchmarks\n\n## Docker\n\nold\n"), 0o644)
	err := writeDockerSection(docker, filepath.Join(dir, "absent.json"), md, nil)
	if err == nil || !strings.Contains(err.Error(), "no figure for sluice") {
		t.Fatalf("err = %v, want one saying sluice measured nothing", err)
	}
}
