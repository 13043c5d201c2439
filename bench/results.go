package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
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
	Params   Params         `json:"params"`
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

// Machine records where the numbers came from.
type Machine struct {
	CPUModel    string `json:"cpu_model"`
	Cores       int    `json:"cores"`
	Kernel      string `json:"kernel"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	GoVersion   string `json:"go_version"`
	MemTotalMB  int    `json:"mem_total_mb"`
	NoFileLimit uint64 `json:"nofile_limit"`
	Commit      string `json:"commit,omitempty"`
	// LoadAvgStart/End are the 1-minute load averages when the run began
	// and ended: above the core count, other work shared the machine and
	// the absolute figures (less so the ratios) suffered.
	LoadAvgStart float64 `json:"loadavg_start"`
	LoadAvgEnd   float64 `json:"loadavg_end"`
}

// LoadAvg returns the 1-minute load average, 0 if unreadable.
func LoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var v float64
	fmt.Sscanf(string(b), "%f", &v)
	return v
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

// metricDef describes a metric before any value exists.
type metricDef struct {
	scenario, title, unit string
	higher                bool
}

// Add records one round's sample for a system, creating the metric on
// first use. Metric order in the JSON follows first use, which follows the
// scenario order, so reports read top to bottom like the run.
func (r *Results) Add(id string, def metricDef, system string, v float64) {
	m := r.Metric(id)
	if m == nil {
		m = &Metric{ID: id, Scenario: def.scenario, Title: def.title, Unit: def.unit, HigherIsBetter: def.higher, Values: map[string]*Series{}}
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
		a1, a2 := metricRank(r.Metrics[i].ID)
		b1, b2 := metricRank(r.Metrics[j].ID)
		if a1 != b1 {
			return a1 < b1
		}
		return a2 < b2
	})
	for _, m := range r.Metrics {
		for _, s := range m.Values {
			s.Summary = Summarize(s.Samples)
		}
		d := m.Values[SystemDirect]
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

// ReadResults loads a results JSON written by WriteFile.
func ReadResults(path string) (*Results, error) {
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

// CollectMachine gathers the machine description from /proc and the Go
// runtime; fields it cannot read stay empty rather than failing the run.
func CollectMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				fmt.Sscanf(strings.TrimPrefix(line, "MemTotal:"), "%d", &kb)
			}
		}
		m.MemTotalMB = kb / 1024
	}
	m.NoFileLimit = currentNoFile()
	m.LoadAvgStart = LoadAvg()
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
			m.Commit += "-dirty"
		}
	}
	return m
}

// sortedKeys returns a map's keys sorted, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
