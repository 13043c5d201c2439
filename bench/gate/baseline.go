// Package gate is the CI regression gate: a committed baseline of a few
// figures (bench/baseline.json), each with a tolerance, and the comparison
// of a fresh run against it that fails naming the metric, the baseline and
// the measured value.
package gate

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
)

// Baseline is the committed reference the CI gate compares against
// (bench/baseline.json).
type Baseline struct {
	Comment  string          `json:"comment"`
	Command  string          `json:"command"`
	Machine  results.Machine `json:"machine"`
	Measured string          `json:"measured"`
	System   string          `json:"system"` // the tunnel gated, normally sluice
	Metrics  []Entry         `json:"metrics"`
}

// Entry is one gated figure.
type Entry struct {
	ID string `json:"id"`
	// Ratio true: the figure is system/Reference (throughput, latency),
	// which cancels most of a machine's speed; false: the absolute figure
	// (memory per connection: direct runs no process to divide by).
	Ratio bool `json:"ratio"`
	// Reference is the system a ratio divides by: direct when empty, or
	// the harness's relay. On loopback the relay is the steadier yardstick:
	// like a tunnel it puts other processes in the path, so a machine whose
	// wake-ups across processes are slow (a busy virtual machine's, 100 µs
	// and more) slows both alike, while direct stays within one process and
	// moves with none of it.
	Reference      string `json:"reference,omitempty"`
	HigherIsBetter bool   `json:"higher_is_better"`
	// Stat is "median" or "best" (the best round: other work on a shared
	// machine only ever makes a round worse, while a real regression makes
	// every round worse, so the best round is the steadier signal for
	// throughput and tail latency).
	Stat  string  `json:"stat"`
	Value float64 `json:"value"`
	// Factor is the tolerance: a higher-is-better figure fails below
	// Value/Factor, a lower-is-better one above Value*Factor.
	Factor float64 `json:"factor"`
}

// Metrics are the figures the gate compares, with tolerances wide
// enough for a noisy 2-core CI machine (throughput moves ±30% run to run,
// tail latency more) yet narrow enough to catch a tunnel that got twice as
// slow or a hot path that gained a sleep. Loopback figures divide by the
// relay (see Entry.Reference); the round trip's P99 is gated rather than
// its P99.9, which on 10,000 rounds is the ten slowest and moved 2x
// between runs of one commit.
var Metrics = []Entry{
	{ID: results.MUpload, Ratio: true, Reference: plan.Relay, HigherIsBetter: true, Stat: "best", Factor: 2},
	{ID: results.MDownload, Ratio: true, Reference: plan.Relay, HigherIsBetter: true, Stat: "best", Factor: 2},
	{ID: results.MLatP99, Ratio: true, Reference: plan.Relay, HigherIsBetter: false, Stat: "best", Factor: 2},
	{ID: results.MemPerConn(1000), Ratio: false, HigherIsBetter: false, Stat: "median", Factor: 1.5},
	// Across the 50 ms, 100 MB/s link, against direct through the same
	// link: a stream window that stops growing caps a connection at
	// window/RTT (256 KiB per 50 ms is 5 MB/s), far below the limit.
	{ID: results.WANMetric(GateWAN, results.WANUpload), Ratio: true, HigherIsBetter: true, Stat: "best", Factor: 2},
	{ID: results.WANMetric(GateWAN, results.WANDownload), Ratio: true, HigherIsBetter: true, Stat: "best", Factor: 2},
}

// GateWAN is the link of the gate's WAN case.
var GateWAN = plan.WANLink{RTTms: 50, RateMBps: 100}

// figure returns the gated value from results.
func (e Entry) figure(r *results.Results, system string) (float64, error) {
	v, ok := e.stat(r, system)
	if !ok {
		return 0, fmt.Errorf("%s has no %s figure in the results (did the scenario fail? see the run's notes)", system, e.ID)
	}
	if !e.Ratio {
		return v, nil
	}
	ref := e.reference()
	d, ok := e.stat(r, ref)
	if !ok || d == 0 {
		return 0, fmt.Errorf("%s has no %s figure to divide by (the gate's systems must include it)", ref, e.ID)
	}
	return v / d, nil
}

// reference is the system a ratio divides by.
func (e Entry) reference() string {
	if e.Reference == "" {
		return plan.Direct
	}
	return e.Reference
}

func (e Entry) stat(r *results.Results, system string) (float64, bool) {
	m := r.Metric(e.ID)
	if m == nil || m.Values[system] == nil || m.Values[system].N == 0 {
		return 0, false
	}
	s := m.Values[system].Summary
	if e.Stat == "best" {
		return s.Best(e.HigherIsBetter), true
	}
	return s.Median, true
}

func (e Entry) describe(system string) string {
	stat := e.Stat
	if stat == "" {
		stat = "median"
	}
	if e.Ratio {
		return fmt.Sprintf("%s %s/%s (%s)", e.ID, system, e.reference(), stat)
	}
	return fmt.Sprintf("%s %s (%s)", e.ID, system, stat)
}

// New makes a baseline from a run's results.
func New(r *results.Results, system string) (*Baseline, error) {
	return newOf(r, system, Metrics)
}

// newOf makes a baseline of the given entries.
func newOf(r *results.Results, system string, entries []Entry) (*Baseline, error) {
	b := &Baseline{
		Comment:  "Reference for `make bench-gate`; regenerate with `go run ./cmd/sluice-bench gate -write-baseline` on the CI machine class when a change legitimately moves these figures.",
		Command:  r.Command,
		Machine:  r.Machine,
		Measured: r.Started.Format("2006-01-02T15:04:05Z07:00"),
		System:   system,
	}
	for _, e := range entries {
		v, err := e.figure(r, system)
		if err != nil {
			return nil, err
		}
		e.Value = v
		b.Metrics = append(b.Metrics, e)
	}
	return b, nil
}

// Median combines baselines measured by separate runs into one
// whose every figure is the median of theirs, so a single noisy run cannot
// set a lax (or a strict) reference.
func Median(runs []*Baseline) (*Baseline, error) {
	if len(runs) == 0 {
		return nil, fmt.Errorf("no baseline runs to combine")
	}
	out := *runs[len(runs)-1]
	out.Metrics = nil
	for i, e := range runs[0].Metrics {
		var vals []float64
		for _, b := range runs {
			if i >= len(b.Metrics) || b.Metrics[i].ID != e.ID {
				return nil, fmt.Errorf("baseline runs disagree on metric %d (%s)", i, e.ID)
			}
			vals = append(vals, b.Metrics[i].Value)
		}
		e.Value = results.Summarize(vals).Median
		out.Metrics = append(out.Metrics, e)
	}
	out.Comment += fmt.Sprintf(" Each value is the median of %d gate runs.", len(runs))
	return &out, nil
}

// Read loads a baseline file.
func Read(path string) (*Baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read baseline %s: %w (create it with `sluice-bench gate -write-baseline`)", path, err)
	}
	var b Baseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("parse baseline %s: %w", path, err)
	}
	if len(b.Metrics) == 0 {
		return nil, fmt.Errorf("baseline %s names no metrics", path)
	}
	for _, e := range b.Metrics {
		if e.Stat != "" && e.Stat != "median" && e.Stat != "best" {
			return nil, fmt.Errorf("baseline %s: %s has stat %q; use median or best", path, e.ID, e.Stat)
		}
		if e.Factor < 1 {
			return nil, fmt.Errorf("baseline %s: %s has tolerance factor %g; it must be at least 1", path, e.ID, e.Factor)
		}
	}
	if b.System == "" {
		b.System = plan.Sluice
	}
	return &b, nil
}

// WriteFile stores the baseline as indented JSON.
func (b *Baseline) WriteFile(path string) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
