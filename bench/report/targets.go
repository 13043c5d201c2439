package report

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
)

// targetsJSON holds the targets and the peers' anchor figures: one data
// file, so a figure is written down once.
//
//go:embed targets.json
var targetsJSON []byte

// Targets is the content of targets.json.
type Targets struct {
	About      string      `json:"about"`
	AnchorRuns []AnchorRun `json:"anchor_runs"`
	Targets    []Target    `json:"targets"`
}

// AnchorRun is one recorded run of the peers: where and when it was
// measured, and its medians by system and metric id.
type AnchorRun struct {
	ID       string                        `json:"id"`
	Measured string                        `json:"measured"`
	Where    string                        `json:"where"`
	Versions map[string]string             `json:"versions"`
	Figures  map[string]map[string]float64 `json:"figures"`
	Note     string                        `json:"note,omitempty"`
}

// Target is one figure sluice is held to. Exactly one bound is set: a
// factor of another system's figure (AtLeast or AtMost, with Vs) or an
// absolute value (AtLeastValue or AtMostValue).
type Target struct {
	Metric string `json:"metric"`
	// System is the system held to the target; sluice when empty.
	System string `json:"system,omitempty"`
	// Vs is the system compared with: measured in the same run when it
	// took part, else its anchor (unless SameRun).
	Vs           string  `json:"vs,omitempty"`
	AtLeast      float64 `json:"at_least,omitempty"`
	AtMost       float64 `json:"at_most,omitempty"`
	AtLeastValue float64 `json:"at_least_value,omitempty"`
	AtMostValue  float64 `json:"at_most_value,omitempty"`
	// AsRatioToDirect compares each system's figure divided by direct's
	// in its own run, so an anchor from another machine still compares.
	AsRatioToDirect bool `json:"as_ratio_to_direct,omitempty"`
	// SameRun skips the target unless Vs took part in the run.
	SameRun bool `json:"same_run,omitempty"`
}

// LoadTargets parses the embedded targets.json.
func LoadTargets() (*Targets, error) { return parseTargets(targetsJSON) }

func parseTargets(b []byte) (*Targets, error) {
	var t Targets
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("report: targets.json: %w", err)
	}
	for i, tg := range t.Targets {
		n := 0
		for _, v := range []float64{tg.AtLeast, tg.AtMost, tg.AtLeastValue, tg.AtMostValue} {
			if v != 0 {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("report: targets.json: target %d (%s) needs exactly one of at_least, at_most, at_least_value, at_most_value", i+1, tg.Metric)
		}
		if (tg.AtLeast != 0 || tg.AtMost != 0) && tg.Vs == "" {
			return nil, fmt.Errorf("report: targets.json: target %d (%s) gives a factor but no system to compare with (vs)", i+1, tg.Metric)
		}
	}
	return &t, nil
}

// anchor returns a system's recorded figure and the run it is from.
func (t *Targets) anchor(system, metric string) (float64, *AnchorRun, bool) {
	for i := range t.AnchorRuns {
		if v, ok := t.AnchorRuns[i].Figures[system][metric]; ok {
			return v, &t.AnchorRuns[i], true
		}
	}
	return 0, nil, false
}

// Check is one line of the report's "Against the targets" table.
type Check struct {
	Target   string
	Measured string
	Verdict  string // "met", "missed by ...", or "n/a: ..."
}

func verdictAtLeast(got, want float64) string {
	if got >= want {
		return "met"
	}
	return fmt.Sprintf("missed by %.0f%%", 100*(1-got/want))
}

func verdictAtMost(got, limit float64) string {
	if got <= limit {
		return "met"
	}
	return fmt.Sprintf("missed: %.0f%% over", 100*(got/limit-1))
}

func measured(r *results.Results, system string) bool {
	for _, s := range r.Systems {
		if s.Name == system && s.Skipped == "" {
			return true
		}
	}
	return false
}

// Checks evaluates the targets on a run: each target whose system has the
// figure gets a line, compared with the other system measured in the same
// run when it took part and with its anchor otherwise.
func (t *Targets) Checks(r *results.Results) []Check {
	var out []Check
	for _, tg := range t.Targets {
		if c, ok := t.check(r, tg); ok {
			out = append(out, c)
		}
	}
	return out
}

func (t *Targets) check(r *results.Results, tg Target) (Check, bool) {
	sys := tg.System
	if sys == "" {
		sys = plan.Sluice
	}
	got, ok := r.Median(tg.Metric, sys)
	if !ok || !measured(r, sys) {
		return Check{}, false
	}
	def := results.DefFor(tg.Metric)
	unit := def.Unit
	name := def.Title
	if sys != plan.Sluice {
		name = sys + ": " + name
	}
	switch {
	case tg.AtLeastValue != 0:
		return Check{fmt.Sprintf("%s ≥ %s %s", name, results.Number(tg.AtLeastValue), unit), results.Number(got) + " " + unit, verdictAtLeast(got, tg.AtLeastValue)}, true
	case tg.AtMostValue != 0:
		return Check{fmt.Sprintf("%s ≤ %s %s", name, results.Number(tg.AtMostValue), unit), results.Number(got) + " " + unit, verdictAtMost(got, tg.AtMostValue)}, true
	}
	factor, atLeast := tg.AtLeast, true
	rel := "≥"
	if tg.AtMost != 0 {
		factor, atLeast, rel = tg.AtMost, false, "≤"
	}
	label := fmt.Sprintf("%s %s %gx %s", name, rel, factor, tg.Vs)
	var vs float64
	var from string
	if measured(r, tg.Vs) {
		v, ok := r.Median(tg.Metric, tg.Vs)
		if !ok {
			return Check{label, results.Number(got) + " " + unit, fmt.Sprintf("n/a: %s has no figure in this run", tg.Vs)}, true
		}
		vs, from = v, "in this run"
	} else {
		if tg.SameRun {
			return Check{}, false
		}
		v, run, ok := t.anchor(tg.Vs, tg.Metric)
		if !ok {
			return Check{label, results.Number(got) + " " + unit, fmt.Sprintf("n/a: %s not in this run and no anchor for this figure", tg.Vs)}, true
		}
		vs, from = v, "anchor "+run.Measured
		if tg.AsRatioToDirect {
			d, ok1 := r.Median(tg.Metric, plan.Direct)
			ad, _, ok2 := t.anchor(plan.Direct, tg.Metric)
			if !ok1 || !ok2 || d == 0 || ad == 0 {
				return Check{label, results.Number(got) + " " + unit, "n/a: the anchor run recorded no direct figure for this metric to scale by"}, true
			}
			// The anchor's share of its run's direct, applied to this run's.
			vs = v / ad * d
			from = fmt.Sprintf("anchor %s: %.0f%% of direct", run.Measured, 100*v/ad)
		}
	}
	if vs == 0 {
		return Check{label, results.Number(got) + " " + unit, "n/a: the figure compared with is 0"}, true
	}
	q := got / vs
	text := fmt.Sprintf("%s %s = %.2fx %s (%s %s, %s)", results.Number(got), unit, q, tg.Vs, results.Number(vs), unit, from)
	if pr, ok := roundRatios(r, tg.Metric, sys, tg.Vs); ok {
		text += fmt.Sprintf("; round by round %.2fx (%.2f–%.2f)", pr.Median, pr.Min, pr.Max)
	}
	if atLeast {
		return Check{label, text, verdictAtLeast(q, factor)}, true
	}
	return Check{label, text, verdictAtMost(q, factor)}, true
}

// roundRatios summarises sys's figure over vs's round by round, when both
// were measured in every round of the run: rounds are interleaved, so each
// pair ran under the same load, and their median is steadier than the ratio
// of the two medians on a busy machine.
func roundRatios(r *results.Results, metric, sys, vs string) (results.Summary, bool) {
	m := r.Metric(metric)
	if m == nil || m.Values[sys] == nil || m.Values[vs] == nil {
		return results.Summary{}, false
	}
	a, b := m.Values[sys].Samples, m.Values[vs].Samples
	if len(a) < 2 || len(a) != len(b) || len(a) != r.Params.Rounds {
		return results.Summary{}, false
	}
	ratios := make([]float64, len(a))
	for i := range a {
		if b[i] == 0 {
			return results.Summary{}, false
		}
		ratios[i] = a[i] / b[i]
	}
	return results.Summarize(ratios), true
}

// AnchorText describes the anchor runs in a sentence each, for the report.
func (t *Targets) AnchorText() string {
	var b strings.Builder
	for _, a := range t.AnchorRuns {
		var vers []string
		for _, k := range []string{plan.Rathole, plan.FRP} {
			if v, ok := a.Versions[k]; ok {
				vers = append(vers, k+" "+v)
			}
		}
		fmt.Fprintf(&b, "- %s, %s (%s)", a.Measured, a.Where, strings.Join(vers, ", "))
		if a.Note != "" {
			fmt.Fprintf(&b, ": %s", a.Note)
		}
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n")
}
