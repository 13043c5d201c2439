package report

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/results/resultstest"
)

func sampleResults() *results.Results {
	return resultstest.Synthetic(map[string]map[string]float64{
		results.MUpload:          {plan.Direct: 2000, plan.Sluice: 900},
		results.MDownload:        {plan.Direct: 2200, plan.Sluice: 1000},
		results.MLatP50:          {plan.Direct: 15, plan.Sluice: 40},
		results.MLatP999:         {plan.Direct: 100, plan.Sluice: 120},
		results.MemPerConn(1000): {plan.Sluice: 9.5},
		results.MHTTPRPS:         {plan.Direct: 40000, plan.Sluice: 20000},
	}, plan.Direct, plan.Sluice, plan.Rathole)
}

func TestWriteTableShowsMediansAndRatios(t *testing.T) {
	r := sampleResults()
	r.Systems[2].Skipped = "not installed"
	var b bytes.Buffer
	WriteTable(&b, r)
	out := b.String()
	for _, want := range []string{"One connection, upload", "900 (x0.45)", "2000", "sluice"} {
		if !strings.Contains(out, want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "rathole") {
		t.Fatalf("a skipped system must not get a column:\n%s", out)
	}
}

func TestMarkdown(t *testing.T) {
	r := sampleResults()
	r.Systems[2].Skipped = "rathole not found"
	r.Notes = []string{"round 2 sluice latency failed: example"}
	in := Inputs{Results: r, ResultsRel: "bench/results.json", Charts: Charts(r), ChartsRel: "bench/charts", Notes: "Sluice is limited by X."}

	t.Run("tables, charts, method, notes", func(t *testing.T) {
		md, err := Markdown(in)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"# Benchmarks", r.Command, "| One connection, upload | MB/s | 2000 | 900 | 0.45 |",
			"![Throughput (higher is better)](bench/charts/throughput.svg)",
			"rathole (not installed here, skipped)", "## Method", "Sluice is limited by X.",
			"round 2 sluice latency failed", MuxBegin, MuxEnd, "## Against the targets",
		} {
			if !strings.Contains(md, want) {
				t.Errorf("report lacks %q", want)
			}
		}
		drawn := map[string]bool{}
		for _, c := range in.Charts {
			drawn[c.File] = c.SVG != ""
		}
		if !drawn["throughput.svg"] {
			t.Fatal("throughput chart not drawn")
		}
		if _, ok := drawn["parallel.svg"]; ok {
			t.Fatal("a chart without data must not be drawn")
		}
	})

	t.Run("mux section kept from previous report", func(t *testing.T) {
		in := in
		in.Previous = "# old\n" + MuxBegin + "\nmux is 3x yamux\n" + MuxEnd + "\ntrailer"
		md, err := Markdown(in)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := extractMux(md)
		if !ok || got != "mux is 3x yamux" {
			t.Fatalf("mux section = %q, %v; want the previous text kept", got, ok)
		}
	})

	t.Run("mux file wins over previous text", func(t *testing.T) {
		in := in
		in.Mux = "fresh mux numbers\n"
		in.Previous = MuxBegin + "\nold\n" + MuxEnd
		md, _ := Markdown(in)
		if got, _ := extractMux(md); got != "fresh mux numbers" {
			t.Fatalf("mux section = %q, want the mux file's text", got)
		}
	})
}

func TestChartsAreWellFormedSVG(t *testing.T) {
	r := resultstest.Synthetic(map[string]map[string]float64{}, plan.Direct, plan.Sluice)
	for i, v := range []float64{1900, 2100, 2000} {
		r.Add(results.MUpload, plan.Direct, v)
		r.Add(results.MUpload, plan.Sluice, v/2+float64(i))
	}
	r.Finalize()
	svg, ok := RenderChart(r, chartSpecs(r.Params)[0])
	if !ok {
		t.Fatal("chart with data not drawn")
	}
	dec := xml.NewDecoder(strings.NewReader(svg))
	rects := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// Background + one bar per system + one legend swatch per system.
	if rects != 1+2+2 {
		t.Fatalf("chart has %d rects, want 5", rects)
	}
	if !strings.Contains(svg, "median 2000 MB/s (min 1900, max 2100, 3 rounds)") {
		t.Fatalf("bar tooltip lacks the spread:\n%s", svg)
	}
}

func TestNiceCeil(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{0.7, 0.8}, {3, 3}, {1, 1}, {120, 120}, {2001, 2500}, {9999, 10000}, {4100, 5000}} {
		if got := niceCeil(c.in); got != c.want {
			t.Errorf("niceCeil(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestWANChart(t *testing.T) {
	l := plan.WANLink{RTTms: 50, RateMBps: 100}
	r := resultstest.Synthetic(map[string]map[string]float64{
		results.WANMetric(l, results.WANUpload):   {plan.Direct: 95, plan.Sluice: 90},
		results.WANMetric(l, results.WANLoadP99):  {plan.Direct: 52000, plan.Sluice: 60000},
		results.WANMetric(l, results.WANDownload): {plan.Direct: 96, plan.Sluice: 5},
	}, plan.Direct, plan.Sluice)
	charts := map[string]Chart{}
	for _, c := range Charts(r) {
		charts[c.File] = c
	}
	wan, ok := charts["wan.svg"]
	if !ok || !strings.Contains(wan.SVG, "50 ms 100 MB/s up") || !strings.Contains(wan.SVG, "50 ms 100 MB/s down") {
		t.Fatalf("WAN throughput chart missing or unlabelled: %v\n%s", ok, wan.SVG)
	}
	if lat, ok := charts["wan-latency.svg"]; !ok || !strings.Contains(lat.SVG, "log scale") {
		t.Fatalf("WAN latency chart missing or not on a log scale")
	}
	md, err := Markdown(Inputs{Results: r, Charts: Charts(r), ChartsRel: "bench/charts"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### Across an emulated WAN", "| 50 ms RTT, 100 MB/s: one connection, upload | MB/s | 95.0 | 90.0 |", "](bench/charts/wan.svg)",
		"50 ms RTT, 100 MB/s: one connection, upload ≥ 90.0 MB/s | 90.0 MB/s | met", "50 ms RTT, 100 MB/s: one connection, download ≥ 90.0 MB/s | 5.00 MB/s | missed by 94%"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TLS's cost reaches capacity planning when sluice-tls ran.
func TestCapacityWithTLS(t *testing.T) {
	figures := func(cpu float64) map[string]float64 {
		return map[string]float64{plan.Sluice: cpu, plan.SluiceTLS: 2 * cpu}
	}
	r := resultstest.Synthetic(map[string]map[string]float64{
		results.MMemEdgeBase:         {plan.Sluice: 10000, plan.SluiceTLS: 10000},
		results.MMemTunnel:           {plan.Sluice: 400, plan.SluiceTLS: 500},
		results.MemEdgePerConn(1000): {plan.Sluice: 12, plan.SluiceTLS: 12},
		results.MCPUEdge:             figures(500),
	}, plan.Sluice, plan.SluiceTLS)
	md, err := Markdown(Inputs{Results: r})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Capacity planning", "With TLS between agents and the edge", "2.00x the plain transport's"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
