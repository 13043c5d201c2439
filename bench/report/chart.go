package report

import (
	"fmt"
	"html"
	"math"
	"strings"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
)

// Chart is one SVG file the report links.
type Chart struct {
	File, Title, Unit, Scenario string
	Metrics                     []string
	// SVG is the drawing, once Charts has rendered it.
	SVG string
	// Log draws bars on a logarithmic scale: latency percentiles span
	// four orders of magnitude, and on a linear scale the small ones vanish.
	Log bool
}

// chartSpecs lists the charts; a chart is drawn when any of its metrics
// has a value.
func chartSpecs(p plan.Params) []Chart {
	mem := Chart{File: "memory.svg", Title: "Memory per held connection (lower is better)", Unit: "KB", Scenario: plan.Memory}
	for _, n := range p.MemoryConns {
		mem.Metrics = append(mem.Metrics, results.MemPerConn(n))
	}
	wan := Chart{File: "wan.svg", Title: "Across an emulated WAN (higher is better)", Unit: "MB/s", Scenario: plan.WAN}
	wanLat := Chart{File: "wan-latency.svg", Title: "64 B round trip across the WAN, 2 bulk uploads running (lower is better)", Unit: "µs", Scenario: plan.WAN, Log: true}
	for _, l := range p.WANLinks {
		wan.Metrics = append(wan.Metrics, results.WANMetric(l, results.WANUpload), results.WANMetric(l, results.WANDownload), results.WANMetric(l, results.WANParallel))
		wanLat.Metrics = append(wanLat.Metrics, results.WANMetric(l, results.WANLoadP50), results.WANMetric(l, results.WANLoadP99), results.WANMetric(l, results.WANLoadP999))
	}
	return []Chart{
		{File: "throughput.svg", Title: "Throughput (higher is better)", Unit: "MB/s", Scenario: plan.Throughput, Metrics: []string{results.MUpload, results.MDownload}},
		{File: "parallel.svg", Title: "Parallel aggregate throughput (higher is better)", Unit: "MB/s", Scenario: plan.Parallel, Metrics: []string{results.MParUpload, results.MParDownload}},
		{File: "cpu.svg", Title: "Tunnel CPU per GiB moved (lower is better)", Unit: "ms/GiB", Scenario: plan.Throughput, Metrics: []string{results.MCPUTotal, results.MCPUEdge}},
		{File: "latency.svg", Title: "64 B round trip, idle tunnel (lower is better)", Unit: "µs", Scenario: plan.Latency, Metrics: []string{results.MLatP50, results.MLatP99, results.MLatP999}, Log: true},
		{File: "latency-loaded.svg", Title: "64 B round trip under load (lower is better)", Unit: "µs", Scenario: plan.Loaded, Metrics: []string{results.MLoadP50, results.MLoadP99, results.MLoadP999}, Log: true},
		{File: "connrate.svg", Title: "New connections per second (higher is better)", Unit: "conn/s", Scenario: plan.ConnRate, Metrics: []string{results.MConnRate}},
		{File: "http.svg", Title: "HTTP requests per second (higher is better)", Unit: "req/s", Scenario: plan.HTTP, Metrics: []string{results.MHTTPRPS}},
		{File: "startup.svg", Title: "Start to first round trip (lower is better)", Unit: "ms", Scenario: plan.Startup, Metrics: []string{results.MStartup}},
		mem,
		wan,
		wanLat,
	}
}

// systemColor gives each system the same color in every chart.
func systemColor(s string) string {
	switch s {
	case plan.Direct:
		return "#8c8c8c"
	case plan.Sluice:
		return "#2b6cb0"
	case plan.Rathole:
		return "#dd6b20"
	case plan.FRP:
		return "#38a169"
	}
	return "#805ad5"
}

// Charts draws every chart that has data; it writes nothing.
func Charts(r *results.Results) []Chart {
	var out []Chart
	for _, c := range chartSpecs(r.Params) {
		svg, ok := RenderChart(r, c)
		if !ok {
			continue
		}
		c.SVG = svg
		out = append(out, c)
	}
	return out
}

// RenderChart draws a horizontal grouped bar chart: one group per metric,
// one bar per system at its median, with a whisker from the round minimum
// to the maximum. It reports false when no metric has a value.
func RenderChart(r *results.Results, c Chart) (string, bool) {
	systems := r.SystemNames()
	type bar struct {
		sys string
		s   results.Summary
	}
	type group struct {
		label string
		bars  []bar
	}
	var groups []group
	maxV, minV := 0.0, math.Inf(1)
	for _, id := range c.Metrics {
		m := r.Metric(id)
		if m == nil {
			continue
		}
		g := group{label: shortLabel(m)}
		for _, s := range systems {
			if se := m.Values[s]; se != nil && se.N > 0 {
				g.bars = append(g.bars, bar{s, se.Summary})
				if se.Max > maxV {
					maxV = se.Max
				}
				if se.Min > 0 && se.Min < minV {
					minV = se.Min
				}
			}
		}
		if len(g.bars) > 0 {
			groups = append(groups, g)
		}
	}
	if len(groups) == 0 || maxV <= 0 {
		return "", false
	}
	const (
		width   = 760
		left    = 170 // labels
		right   = 90  // value text
		barH    = 18
		barGap  = 4
		groupGp = 14
		top     = 40
	)
	plotW := float64(width - left - right)
	linScale := plotW / niceCeil(maxV)
	// pos maps a value to a bar length in pixels.
	pos := func(v float64) float64 { return v * linScale }
	if c.Log && minV < maxV {
		lo := math.Pow(10, math.Floor(math.Log10(minV))) // a power of ten below every value
		hi := niceCeil(maxV)
		span := math.Log10(hi / lo)
		pos = func(v float64) float64 {
			if v <= lo {
				return 1
			}
			return plotW * math.Log10(v/lo) / span
		}
	}
	h := top
	for _, g := range groups {
		h += len(g.bars)*(barH+barGap) + groupGp
	}
	h += 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, h, width, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", 10, html.EscapeString(c.Title))
	y := top
	for _, g := range groups {
		gh := len(g.bars)*(barH+barGap) - barGap
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-8, y+gh/2, html.EscapeString(g.label))
		for _, br := range g.bars {
			w := pos(br.s.Median)
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: median %s %s (min %s, max %s, %d rounds)</title></rect>`+"\n",
				left, y, w, barH, systemColor(br.sys), br.sys, results.Number(br.s.Median), html.EscapeString(c.Unit), results.Number(br.s.Min), results.Number(br.s.Max), br.s.N)
			if br.s.N > 1 {
				x1, x2, cy := float64(left)+pos(br.s.Min), float64(left)+pos(br.s.Max), y+barH/2
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#1a202c" stroke-width="1.2"/>`, x1, cy, x2, cy)
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#1a202c"/>`, x1, cy-4, x1, cy+4)
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#1a202c"/>`+"\n", x2, cy-4, x2, cy+4)
			}
			tx := float64(left) + pos(br.s.Max) + 6
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" dominant-baseline="middle">%s %s</text>`+"\n", tx, y+barH/2, results.Number(br.s.Median), html.EscapeString(c.Unit))
			y += barH + barGap
		}
		y += groupGp - barGap
	}
	// Legend.
	lx := left
	for _, s := range systems {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", lx, h-24, systemColor(s), lx+16, h-14, html.EscapeString(s))
		lx += 24 + 8*len(s) + 16
	}
	note := "bar: median; whisker: min–max over rounds"
	if c.Log {
		note += "; log scale"
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#4a5568" text-anchor="end">%s</text>`+"\n", width-10, h-14, note)
	b.WriteString("</svg>\n")
	return b.String(), true
}

// niceCeil rounds up to a round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or
// 8 times a power of ten) so the longest bar nearly fills the plot.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		// The tolerance keeps 3 from rounding up to 4 through 3.0000000004.
		if m*p >= v*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

func shortLabel(m *results.Metric) string {
	switch m.ID {
	case results.MUpload, results.MParUpload:
		return "upload"
	case results.MDownload, results.MParDownload:
		return "download"
	case results.MCPUTotal:
		return "all processes"
	case results.MCPUEdge:
		return "edge only"
	case results.MLatP50, results.MLoadP50:
		return "P50"
	case results.MLatP99, results.MLoadP99:
		return "P99"
	case results.MLatP999, results.MLoadP999:
		return "P99.9"
	}
	if l, fig, ok := results.ParseWAN(m.ID); ok {
		link := fmt.Sprintf("%g ms", l.RTTms)
		if l.RateMBps > 0 {
			link += fmt.Sprintf(" %g MB/s", l.RateMBps)
		}
		short := map[string]string{results.WANUpload: "up", results.WANDownload: "down", results.WANParallel: "parallel",
			results.WANLoadP50: "P50", results.WANLoadP99: "P99", results.WANLoadP999: "P99.9"}[fig]
		return link + " " + short
	}
	var n int
	if results.Scan(m.ID, results.MemPerConnFormat, &n) {
		return fmt.Sprintf("%d conns", n)
	}
	return m.Unit
}
