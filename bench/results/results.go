// Package results is the record of a run: every system's samples per
// metric, their summaries and ratios to direct, the machine and the
// parameters. The report, the gate and the capacity planner read only this.
package results

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/sluicehq/sluice/bench/plan"
)

// SchemaVersion is bumped when the results JSON changes incompatibly.
const SchemaVersion = 1

// Results is everything one run measured, plus what is needed to judge and
// reproduce it. BENCHMARKS.md, the gate and the capacity planner read only
// this.
type Results struct {
	Schema   int            `json:"schema"`
	Command  string         `json:"command"`
	Preset   string         `json:"preset"`
	Source   string         `json:"source"`           // "processes" (this harness on one host) or "docker"
	Engine   string         `json:"engine,omitempty"` // a docker run's engine: version and set-up
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Machine  Machine        `json:"machine"`
	Params   plan.Params    `json:"params"`
	Systems  []SystemResult `json:"systems"`
	Metrics  []*Metric      `json:"metrics"`
	Notes    []string       `json:"notes,omitempty"`
	// Failures counts scenario runs that failed (each is also in Notes).
	Failures int `json:"failures"`
}

// SystemResult says whether a system took part and, if not, why.
type SystemResult struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Skipped string `json:"skipped,omitempty"`
}

// Metric is one figure (e.g. single-stream upload MB/s) for every system.
type Metric struct {
	ID             string             `json:"id"`
	Scenario       string             `json:"scenario"`
	Title          string             `json:"title"`
	Unit           string             `json:"unit"`
	HigherIsBetter bool               `json:"higher_is_better"`
	Values         map[string]*Series `json:"values"`
}

// Series is one system's samples (one per round) for a metric.
type Series struct {
	Samples []float64 `json:"samples"`
	Summary
	// RatioToDirect is this system's median over direct's; 0 when direct
	// has no figure for the metric (e.g. memory: direct runs no process).
	RatioToDirect float64 `json:"ratio_to_direct,omitempty"`
}

// Add records one round's sample for a system, creating the metric (from
// its definition, DefFor) on first use.
func (r *Results) Add(id, system string, v float64) {
	m := r.Metric(id)
	if m == nil {
		def := DefFor(id)
		m = &Metric{ID: id, Scenario: def.Scenario, Title: def.Title, Unit: def.Unit, HigherIsBetter: def.Higher, Values: map[string]*Series{}}
		r.Metrics = append(r.Metrics, m)
	}
	s := m.Values[system]
	if s == nil {
		s = &Series{}
		m.Values[system] = s
	}
	s.Samples = append(s.Samples, v)
}

// Metric returns the metric with this id, or nil.
func (r *Results) Metric(id string) *Metric {
	for _, m := range r.Metrics {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// Median returns a system's median for a metric and whether it exists.
func (r *Results) Median(id, system string) (float64, bool) {
	m := r.Metric(id)
	if m == nil {
		return 0, false
	}
	s := m.Values[system]
	if s == nil || s.N == 0 {
		return 0, false
	}
	return s.Median, true
}

// Finalize orders the metrics, computes summaries and ratios to direct.
func (r *Results) Finalize() {
	sort.SliceStable(r.Metrics, func(i, j int) bool {
		a1, a2 := rank(r.Metrics[i].ID)
		b1, b2 := rank(r.Metrics[j].ID)
		if a1 != b1 {
			return a1 < b1
		}
		return a2 < b2
	})
	for _, m := range r.Metrics {
		for _, s := range m.Values {
			s.Summary = Summarize(s.Samples)
		}
		d := m.Values[plan.Direct]
		for _, s := range m.Values {
			s.RatioToDirect = 0
			if d != nil && d.N > 0 && d.Median != 0 && s.N > 0 {
				s.RatioToDirect = s.Median / d.Median
			}
		}
	}
}

// SystemNames returns the systems that produced at least one figure, in
// the order they were configured.
func (r *Results) SystemNames() []string {
	var out []string
	for _, s := range r.Systems {
		if s.Skipped == "" {
			out = append(out, s.Name)
		}
	}
	return out
}

// Scenarios returns the scenario names in metric order.
func (r *Results) Scenarios() []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range r.Metrics {
		if !seen[m.Scenario] {
			seen[m.Scenario] = true
			out = append(out, m.Scenario)
		}
	}
	return out
}

// WriteFile writes the results as indented JSON.
func (r *Results) WriteFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("make directory for results %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results to %s: %w (check the directory exists and is writable)", path, err)
	}
	return nil
}

// Read loads a results JSON written by WriteFile.
func Read(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read results %s: %w (run `make bench` or `sluice-bench run -out %s` first)", path, err, path)
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("parse results %s: %w (the file is not a sluice-bench results JSON)", path, err)
	}
	if r.Schema != SchemaVersion {
		return nil, fmt.Errorf("results %s has schema %d, this sluice-bench reads schema %d: re-run the benchmark", path, r.Schema, SchemaVersion)
	}
	return &r, nil
}
