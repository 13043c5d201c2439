package bench

import "fmt"

// TargetCheck is one line of the "what the numbers should show".
type TargetCheck struct {
	Target   string
	Measured string
	Verdict  string // "met", "missed by ...", or "n/a: ..."
}

// Anchor figures for peers that could not be installed, from
// ../shared/PERFORMANCE-NOTES.md (same kind of 2-core machine, other runs).
const (
	anchorRatholeUpRatio   = 0.20 // of direct, single-stream upload
	anchorRatholeDownRatio = 0.35 // of direct, single-stream download
	anchorRatholeKBPerConn = 34.0
	anchorRatholeP999us    = 127.0 // upper end of 46–127 µs
	anchorFRPHTTPRatio     = 0.07  // of direct requests per second
)

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

func (r *Results) measured(system string) bool {
	for _, s := range r.Systems {
		if s.Name == system && s.Skipped == "" {
			return true
		}
	}
	return false
}

// TargetChecks evaluates sluice against the targets, using measured peers
// when present and the anchors otherwise. Empty when sluice has no figures.
func TargetChecks(r *Results) []TargetCheck {
	if !r.measured(SystemSluice) {
		return nil
	}
	var out []TargetCheck
	ratio := func(id string) (float64, bool) {
		s, ok1 := r.Median(id, SystemSluice)
		d, ok2 := r.Median(id, SystemDirect)
		if !ok1 || !ok2 || d == 0 {
			return 0, false
		}
		return s / d, true
	}
	peer := func(id, system string) (float64, bool) {
		if !r.measured(system) {
			return 0, false
		}
		return r.Median(id, system)
	}
	sl := func(id string) (float64, bool) { return r.Median(id, SystemSluice) }

	for _, dir := range []struct {
		id, name string
		anchor   float64
	}{{MUpload, "upload", anchorRatholeUpRatio}, {MDownload, "download", anchorRatholeDownRatio}} {
		if q, ok := ratio(dir.id); ok {
			out = append(out, TargetCheck{"one connection " + dir.name + " ≥ 35% of direct", fmt.Sprintf("%.0f%% of direct", 100*q), verdictAtLeast(q, 0.35)})
			if rv, ok := peer(dir.id, SystemRathole); ok {
				s, _ := sl(dir.id)
				out = append(out, TargetCheck{"one connection " + dir.name + " ≥ 1.5x rathole", fmt.Sprintf("%.2fx rathole", s/rv), verdictAtLeast(s/rv, 1.5)})
			} else {
				out = append(out, TargetCheck{"one connection " + dir.name + " ≥ 1.5x rathole (anchor: rathole ≈ " + fmt.Sprintf("%.0f%%", 100*dir.anchor) + " of direct)", fmt.Sprintf("%.0f%% of direct = %.2fx the anchor", 100*q, q/dir.anchor), verdictAtLeast(q/dir.anchor, 1.5)})
			}
		}
	}
	for _, id := range []string{MParUpload, MParDownload} {
		s, ok := sl(id)
		if !ok {
			continue
		}
		name := "10-connection aggregate upload"
		if id == MParDownload {
			name = "10-connection aggregate download"
		}
		if rv, ok := peer(id, SystemRathole); ok {
			out = append(out, TargetCheck{name + " ≥ 1.5x rathole", fmt.Sprintf("%.2fx rathole", s/rv), verdictAtLeast(s/rv, 1.5)})
		} else if q, ok := ratio(id); ok {
			out = append(out, TargetCheck{name + " ≥ 1.5x rathole", fmt.Sprintf("%.0f%% of direct", 100*q), "n/a: rathole not installed and no anchor for this figure"})
		}
	}
	if s, ok := sl(MLatP999); ok {
		if rv, ok := peer(MLatP999, SystemRathole); ok {
			out = append(out, TargetCheck{"64 B P99.9 ≤ rathole's", fmt.Sprintf("%s µs vs %s µs", fmtNum(s), fmtNum(rv)), verdictAtMost(s, rv)})
		} else {
			d, _ := r.Median(MLatP999, SystemDirect)
			out = append(out, TargetCheck{"64 B P99.9 ≤ rathole's (anchor: 46–127 µs)", fmt.Sprintf("%s µs (direct: %s µs)", fmtNum(s), fmtNum(d)), verdictAtMost(s, anchorRatholeP999us)})
		}
	}
	if s, ok := sl(MLoadP999); ok {
		if rv, ok := peer(MLoadP999, SystemRathole); ok {
			out = append(out, TargetCheck{"P99.9 under load ≤ rathole's", fmt.Sprintf("%s µs vs %s µs", fmtNum(s), fmtNum(rv)), verdictAtMost(s, rv)})
		} else {
			d, _ := r.Median(MLoadP999, SystemDirect)
			out = append(out, TargetCheck{"P99.9 under load ≤ rathole's", fmt.Sprintf("%s µs (direct: %s µs)", fmtNum(s), fmtNum(d)), "n/a: rathole not installed and no anchor for this figure"})
		}
	}
	// The largest connection count is the steadiest per-connection figure.
	var memID string
	for _, n := range r.Params.MemoryConns {
		if _, ok := sl(MemPerConn(n)); ok {
			memID = MemPerConn(n)
		}
	}
	if memID != "" {
		s, _ := sl(memID)
		if rv, ok := peer(memID, SystemRathole); ok {
			out = append(out, TargetCheck{"memory per held connection ≤ 0.5x rathole's", fmt.Sprintf("%s KB vs %s KB", fmtNum(s), fmtNum(rv)), verdictAtMost(s, 0.5*rv)})
		} else {
			out = append(out, TargetCheck{"memory per held connection ≤ 0.5x rathole's (anchor: 34 KB)", fmt.Sprintf("%s KB (%s)", fmtNum(s), defFor(memID).title), verdictAtMost(s, 0.5*anchorRatholeKBPerConn)})
		}
	}
	if q, ok := ratio(MHTTPRPS); ok {
		if fv, ok := peer(MHTTPRPS, SystemFRP); ok {
			s, _ := sl(MHTTPRPS)
			out = append(out, TargetCheck{"HTTP requests/s ≥ 3x frp", fmt.Sprintf("%.2fx frp", s/fv), verdictAtLeast(s/fv, 3)})
		} else {
			out = append(out, TargetCheck{"HTTP requests/s ≥ 3x frp (anchor: frp ≈ 7% of direct)", fmt.Sprintf("%.0f%% of direct = %.1fx the anchor", 100*q, q/anchorFRPHTTPRatio), verdictAtLeast(q/anchorFRPHTTPRatio, 3)})
		}
	}
	return out
}
