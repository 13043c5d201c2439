package report

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/results/resultstest"
)

func dockerResults() *results.Results {
	r := resultstest.Synthetic(map[string]map[string]float64{
		results.MUpload:          {plan.Direct: 1000, plan.Sluice: 300},
		results.MLatP50:          {plan.Direct: 20, plan.Sluice: 140},
		results.MemPerConn(1000): {plan.Sluice: 17},
	}, plan.Direct, plan.Sluice, plan.Rathole)
	r.Source = "docker"
	r.Engine = "Docker Engine 20.10.24 (cgroup v1, cgroupfs driver, vfs storage), compose 2.40.3"
	r.Systems[1].Version = "sluice 0.1.0; image sluice:local; limits 1.00 CPU and 512 MiB memory per container"
	r.Systems[2].Skipped = "no rapiz1/rathole:v0.5.0 image and no rathole binary; set RATHOLE_BIN"
	return r
}

func TestDockerSection(t *testing.T) {
	loop := resultstest.Synthetic(map[string]map[string]float64{
		results.MUpload: {plan.Direct: 2000, plan.Sluice: 800},
		results.MLatP50: {plan.Direct: 15, plan.Sluice: 90},
	}, plan.Direct, plan.Sluice)
	in := DockerInputs{Docker: dockerResults(), DockerRel: "bench/out/docker.json", Loopback: loop, LoopbackRel: "bench/results.json",
		ChartsRel: "bench/charts/docker"}
	md, charts, err := DockerSection(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"`SLUICEBENCH_PRESET=quick make bench-docker`", in.Docker.Engine, "bench/out/docker.json",
		"| sluice | sluice 0.1.0; image sluice:local; limits 1.00 CPU and 512 MiB memory per container |",
		"| rathole | skipped: no rapiz1/rathole:v0.5.0 image and no rathole binary; set RATHOLE_BIN |",
		"| One connection, upload | MB/s | 1000 | 300 | 0.30 |",
		"![Throughput (higher is better), Docker](bench/charts/docker/throughput.svg)",
		// Side by side: 800/2000 on loopback, 300/1000 in Docker.
		"| One connection, upload | 0.40 | 0.30 |",
		"What differs from the loopback run",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Docker section lacks %q:\n%s", want, md)
		}
	}
	if len(charts) == 0 || charts[0].File != "throughput.svg" || charts[0].SVG == "" {
		t.Errorf("throughput chart not drawn: %+v", charts)
	}

	in.Loopback = nil
	if md, _, _ := DockerSection(in); strings.Contains(md, "Docker beside loopback") {
		t.Error("without a loopback run there is nothing to set beside")
	}
	in.Docker = sampleResults() // a process run
	if _, _, err := DockerSection(in); err == nil || !strings.Contains(err.Error(), "not a docker one") {
		t.Errorf("a process run as the Docker section: %v, want an error", err)
	}
}

func TestReplaceDocker(t *testing.T) {
	fresh := "# B\n\n## Docker\n\nold prose\n\n## Multiplexer (in-process)\n\nmux\n"
	got, err := ReplaceDocker(fresh, "new figures")
	if err != nil {
		t.Fatal(err)
	}
	want := "# B\n\n## Docker\n\n" + DockerBegin + "\nnew figures\n" + DockerEnd + "\n\n## Multiplexer (in-process)\n\nmux\n"
	if got != want {
		t.Fatalf("first Docker section:\n%q\nwant\n%q", got, want)
	}
	again, err := ReplaceDocker(got, "newer figures")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := extractDocker(again); s != "newer figures" || !strings.HasSuffix(again, "## Multiplexer (in-process)\n\nmux\n") {
		t.Fatalf("second Docker section = %q in\n%s", s, again)
	}
	if _, err := ReplaceDocker("# B\n\n## Other\n", "x"); err == nil {
		t.Error("a report without a Docker section accepted")
	}
}

// A report regenerated from the loopback run keeps the Docker section as
// the last make bench-docker wrote it.
func TestMarkdownKeepsDockerSection(t *testing.T) {
	in := Inputs{Results: sampleResults(), ResultsRel: "bench/results.json", ChartsRel: "bench/charts"}
	md, err := Markdown(in)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := extractDocker(md); !ok || s != dockerPlaceholder {
		t.Fatalf("Docker section of a first report = %q, %v; want the placeholder", s, ok)
	}
	in.Previous, _ = ReplaceDocker(md, "measured in containers")
	md, err = Markdown(in)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := extractDocker(md); s != "measured in containers" {
		t.Fatalf("Docker section after regenerating = %q, want the previous one kept", s)
	}
}
