package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleResults() *Results {
	return synthetic(map[string]map[string]float64{
		MUpload:          {SystemDirect: 2000, SystemSluice: 900},
		MDownload:        {SystemDirect: 2200, SystemSluice: 1000},
		MLatP50:          {SystemDirect: 15, SystemSluice: 40},
		MLatP999:         {SystemDirect: 100, SystemSluice: 120},
		MemPerConn(1000): {SystemSluice: 9.5},
		MHTTPRPS:         {SystemDirect: 40000, SystemSluice: 20000},
	}, SystemDirect, SystemSluice, SystemRathole)
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

func TestGenerateReport(t *testing.T) {
	dir := t.TempDir()
	r := sampleResults()
	r.Systems[2].Skipped = "rathole not found"
	r.Notes = []string{"round 2 sluice latency failed: example"}
	mux := filepath.Join(dir, "mux-results.md")
	notes := filepath.Join(dir, "notes.md")
	os.WriteFile(notes, []byte("Sluice is limited by X."), 0o644)
	in := ReportInputs{Results: r, ResultsRel: "bench/results.json", ChartsDir: filepath.Join(dir, "charts"), ChartsRel: "bench/charts", MuxFile: mux, NotesFile: notes}

	t.Run("tables, charts, method, notes", func(t *testing.T) {
		md, err := GenerateReport(in)
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
		if _, err := os.Stat(filepath.Join(dir, "charts", "throughput.svg")); err != nil {
			t.Fatalf("throughput chart not written: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "charts", "parallel.svg")); err == nil {
			t.Fatal("a chart without data must not be written")
		}
	})

	t.Run("mux section kept from previous report", func(t *testing.T) {
		in := in
		in.Previous = "# old\n" + MuxBegin + "\nmux is 3x yamux\n" + MuxEnd + "\ntrailer"
		md, err := GenerateReport(in)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := extractMux(md)
		if !ok || got != "mux is 3x yamux" {
			t.Fatalf("mux section = %q, %v; want the previous text kept", got, ok)
		}
	})

	t.Run("mux file wins over previous text", func(t *testing.T) {
		os.WriteFile(mux, []byte("fresh mux numbers\n"), 0o644)
		defer os.Remove(mux)
		in := in
		in.Previous = MuxBegin + "\nold\n" + MuxEnd
		md, _ := GenerateReport(in)
		if got, _ := extractMux(md); got != "fresh mux numbers" {
			t.Fatalf("mux section = %q, want the mux file's text", got)
		}
	})
}

func TestChartsAreWellFormedSVG(t *testing.T) {
	r := synthetic(map[string]map[string]float64{}, SystemDirect, SystemSluice)
	for i, v := range []float64{1900, 2100, 2000} {
		r.Add(MUpload, defFor(MUpload), SystemDirect, v)
		r.Add(MUpload, defFor(MUpload), SystemSluice, v/2+float64(i))
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

func TestFmtNum(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{{1234.4, "1234"}, {99.95, "99.95"}, {100, "100"}, {42.25, "42.2"}, {3.14159, "3.14"}} {
		if got := fmtNum(c.in); got != c.want {
			t.Errorf("fmtNum(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{0.7, 0.8}, {3, 3}, {1, 1}, {120, 120}, {2001, 2500}, {9999, 10000}, {4100, 5000}} {
		if got := niceCeil(c.in); got != c.want {
			t.Errorf("niceCeil(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestResultsRoundTripJSON(t *testing.T) {
	r := sampleResults()
	path := filepath.Join(t.TempDir(), "sub", "r.json")
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResults(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := back.Median(MUpload, SystemSluice); !ok || v != 900 {
		t.Fatalf("round trip lost the upload median: %v %v", v, ok)
	}
	os.WriteFile(path, []byte(`{"schema": 99}`), 0o644)
	if _, err := ReadResults(path); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Fatalf("a results file of another schema must be refused, got %v", err)
	}
}
