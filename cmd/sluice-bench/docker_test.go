package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/report"
	"github.com/sluicehq/sluice/bench/results"
)

// writeDockerRun writes a docker run's results with one figure per system
// given.
func writeDockerRun(t *testing.T, path string, figures map[string]float64) {
	t.Helper()
	r := &results.Results{Schema: results.SchemaVersion, Source: "docker", Preset: "quick", Command: "make bench-docker"}
	r.Params, _ = plan.Preset("quick")
	m := &results.Metric{ID: results.MUpload, Scenario: plan.Throughput, Title: "One connection, upload", Unit: "MB/s", HigherIsBetter: true, Values: map[string]*results.Series{}}
	for _, s := range []string{plan.Direct, plan.Sluice} {
		r.Systems = append(r.Systems, results.SystemResult{Name: s, Version: "test"})
		if v, ok := figures[s]; ok {
			m.Values[s] = &results.Series{Samples: []float64{v}}
		}
	}
	r.Metrics = []*results.Metric{m}
	r.Finalize()
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
}

func TestWriteDockerSection(t *testing.T) {
	dir := t.TempDir()
	docker, md := filepath.Join(dir, "bench", "out", "docker.json"), filepath.Join(dir, "BENCHMARKS.md")
	os.MkdirAll(filepath.Dir(docker), 0o755)
	writeDockerRun(t, docker, map[string]float64{plan.Direct: 1000, plan.Sluice: 300})
	os.WriteFile(md, []byte("# Benchmarks\n\n## Docker\n\nold prose\n\n## Multiplexer (in-process)\n\nmux\n"), 0o644)
	note := "container frps: killed by the kernel at its memory limit (OOM, exit 137)"

	for range 2 { // a second report must not repeat the note
		if err := writeDockerSection(docker, filepath.Join(dir, "bench", "results.json"), md, []string{note}); err != nil {
			t.Fatal(err)
		}
	}
	text, _ := os.ReadFile(md)
	for _, want := range []string{report.DockerBegin, "| One connection, upload | MB/s | 1000 | 300 | 0.30 |", "- " + note, "## Multiplexer (in-process)\n\nmux\n"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(string(text), "old prose") {
		t.Error("the old Docker prose was kept")
	}
	r, err := results.Read(docker)
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
	writeDockerRun(t, docker, map[string]float64{plan.Direct: 1000})
	os.WriteFile(md, []byte("# Benchmarks\n\n## Docker\n\nold\n"), 0o644)
	err := writeDockerSection(docker, filepath.Join(dir, "absent.json"), md, nil)
	if err == nil || !strings.Contains(err.Error(), "no figure for sluice") {
		t.Fatalf("err = %v, want one saying sluice measured nothing", err)
	}
}
