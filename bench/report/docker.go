package report

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
)

// Markers around BENCHMARKS.md's Docker section: `make bench-docker`
// rewrites what is between them from bench/out/docker.json, and a report
// regenerated from the loopback run keeps it as it is.
const (
	DockerBegin = "<!-- docker:begin (written by `make bench-docker` from bench/out/docker.json) -->"
	DockerEnd   = "<!-- docker:end -->"
)

// dockerPlaceholder is the section before any Docker run was reported.
const dockerPlaceholder = "Not measured yet: `make bench-docker` runs the same runner in containers (docker-compose.bench.yml) and writes this section from bench/out/docker.json."

// DockerInputs are what the Docker section is written from.
type DockerInputs struct {
	Docker    *results.Results // a docker run (bench/out/docker.json)
	DockerRel string           // its path relative to the repository
	// Loopback is the process run BENCHMARKS.md reports (bench/results.json),
	// for the side-by-side ratios; nil leaves that table out.
	Loopback    *results.Results
	LoopbackRel string
	ChartsRel   string // how BENCHMARKS.md links the section's charts' files
}

// extractDocker returns the text between the Docker markers of a report.
func extractDocker(prev string) (string, bool) {
	i := strings.Index(prev, DockerBegin)
	j := strings.Index(prev, DockerEnd)
	if i < 0 || j < i {
		return "", false
	}
	return strings.Trim(prev[i+len(DockerBegin):j], "\n"), true
}

// ReplaceDocker puts section between the Docker markers of report; a
// report without them gets them in place of the body of its "## Docker"
// section.
func ReplaceDocker(report, section string) (string, error) {
	block := DockerBegin + "\n" + strings.Trim(section, "\n") + "\n" + DockerEnd
	if i, j := strings.Index(report, DockerBegin), strings.Index(report, DockerEnd); i >= 0 && j > i {
		return report[:i] + block + report[j+len(DockerEnd):], nil
	}
	const head = "\n## Docker\n"
	i := strings.Index(report, head)
	if i < 0 {
		return "", fmt.Errorf("the report has neither the Docker markers nor a \"## Docker\" section to put them in; regenerate it with `sluice-bench report` first")
	}
	body := i + len(head)
	end := len(report)
	if k := strings.Index(report[body:], "\n## "); k >= 0 {
		end = body + k + 1
	}
	return report[:body] + "\n" + block + "\n\n" + report[end:], nil
}

// dockerComparison lists the figures whose ratio to direct the section
// sets beside the loopback run's.
var dockerComparison = []string{results.MUpload, results.MDownload, results.MParUpload, results.MParDownload, results.MLatP50, results.MLatP99, results.MLatP999, results.MLoadP50, results.MLoadP999, results.MConnRate, results.MHTTPRPS}

// DockerSection returns the section's Markdown and the charts it links;
// it writes nothing.
func DockerSection(in DockerInputs) (string, []Chart, error) {
	r := in.Docker
	if r.Source != "docker" {
		return "", nil, fmt.Errorf("%s is a %q run, not a docker one (make bench-docker writes bench/out/docker.json)", in.DockerRel, r.Source)
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	systems := r.SystemNames()

	p("Measured %s with `SLUICEBENCH_PRESET=%s make bench-docker` (%d rounds) on a %d-core %s, Linux %s, commit `%s`; %s. Results: %s.",
		r.Started.Format("2006-01-02 15:04 MST"), r.Preset, r.Params.Rounds, r.Machine.Cores, r.Machine.CPUModel, r.Machine.Kernel, orDash(r.Machine.Commit), orDash(r.Engine), in.DockerRel)
	p("")
	p("Every system runs in containers on one compose bridge network, the load generator and the target in containers of their own (1 CPU, 1 GiB each); `direct` is the load generator straight to the target container. The images are built on the machine: sluice and the harness from static binaries (Dockerfile.local), the peers from their pinned images, or from the binaries given in RATHOLE_BIN, FRPS_BIN and FRPC_BIN when the images cannot be pulled. A tunnel's memory and CPU are read from the cgroup its containers share (memory: charged memory less inactive page cache, as `docker stats` counts it; CPU: the cgroup's CPU time), not from /proc; edge figures come from the edge container's own cgroup.")
	p("")
	p("| system | version, image and limits |")
	p("|---|---|")
	for _, s := range r.Systems {
		v := s.Version
		if s.Name == plan.Direct {
			v = "the load generator's container to the target's, across the bridge"
		}
		if s.Skipped != "" {
			v = "skipped: " + s.Skipped
		}
		p("| %s | %s |", s.Name, v)
	}
	p("")

	header, sep := "| metric | unit |", "|---|---|"
	for _, s := range systems {
		header += " " + s + " |"
		sep += "---:|"
		if s != plan.Direct {
			header += " x direct |"
			sep += "---:|"
		}
	}
	p("Medians over the rounds, min–max in brackets; `x direct` is the ratio of the median to direct's.")
	p("")
	p("%s", header)
	p("%s", sep)
	for _, m := range r.Metrics {
		row := fmt.Sprintf("| %s | %s |", m.Title, m.Unit)
		for _, s := range systems {
			row += systemCells(m.Values[s], s)
		}
		p("%s", row)
	}
	p("")
	charts := Charts(r)
	for _, c := range charts {
		p("![%s, Docker](%s)", c.Title, filepath.ToSlash(filepath.Join(in.ChartsRel, c.File)))
		p("")
	}

	if in.Loopback != nil {
		writeDockerComparison(p, in)
	}

	p("**What differs from the loopback run, and why the figures differ.**")
	p("")
	p("- *The path.* Every connection crosses a veth pair and the Linux bridge into another network namespace at each hop (load generator to edge, edge to agent, agent to target), where the loopback run stays on `lo`. Direct crosses the bridge too (load generator to target), so ratios to direct cancel part of that cost; absolute figures are lower.")
	p("- *CPU.* Each container is held to its CPU limit by the CFS quota (a 100 ms period): a tunnel process that uses its share early in a period waits for the next one, which shows in latency tails and under load. On loopback no process is capped. The limits add up to more than the machine has (four or more 1-CPU containers on 2 cores), so the containers also contend for the cores as the processes do on loopback.")
	p("- *Memory.* The cgroup charge is not RSS: it counts the page cache a container touched (active part) and kernel memory charged to it, and takes every container of the system together. On cgroup v1 socket buffers are accounted apart (`memory.kmem.tcp`) and are not in it; on v2 they are. So per-connection figures here are of the same order as the loopback run's RSS figures but not the same measure.")
	p("- *One instance for every round.* The containers are started once, before the first round, so there is no startup figure, and memory is measured on instances that earlier scenarios have used (buffers they grew still count); the loopback run starts a fresh instance for each memory measurement.")
	p("- *Open files.* A container inherits the engine's open-file limit (%s here at most), as the processes of the loopback run inherit the shell's.", nofileNote(r))
	p("")

	if len(r.Notes) > 0 {
		p("Notes from the run:")
		p("")
		for _, n := range r.Notes {
			p("- %s", n)
		}
		p("")
	}
	return strings.TrimRight(b.String(), "\n"), charts, nil
}

func nofileNote(r *results.Results) string {
	if r.Machine.NoFileLimit > 0 {
		return fmt.Sprint(r.Machine.NoFileLimit)
	}
	return "the load generator's"
}

// writeDockerComparison sets each tunnel's ratio to direct in the Docker
// run beside the same ratio in the loopback run: the ratios, not the
// absolute figures, are what the two set-ups can be compared on.
func writeDockerComparison(p func(string, ...any), in DockerInputs) {
	d, l := in.Docker, in.Loopback
	var tunnels []string
	for _, s := range d.SystemNames() {
		if s != plan.Direct && measured(l, s) {
			tunnels = append(tunnels, s)
		}
	}
	if len(tunnels) == 0 {
		return
	}
	p("**Ratios to direct, Docker beside loopback** (loopback: %s, %s, commit `%s`, preset %s).", in.LoopbackRel, l.Started.Format("2006-01-02 15:04 MST"), orDash(l.Machine.Commit), l.Preset)
	p("")
	header, sep := "| metric |", "|---|"
	for _, s := range tunnels {
		header += fmt.Sprintf(" %s, loopback | %s, Docker |", s, s)
		sep += "---:|---:|"
	}
	p("%s", header)
	p("%s", sep)
	for _, id := range dockerComparison {
		dm, lm := d.Metric(id), l.Metric(id)
		if dm == nil || lm == nil {
			continue
		}
		row := "| " + dm.Title + " |"
		for _, s := range tunnels {
			row += " " + ratioCell(lm, s) + " | " + ratioCell(dm, s) + " |"
		}
		p("%s", row)
	}
	p("")
}

func ratioCell(m *results.Metric, system string) string {
	if se := m.Values[system]; se != nil && se.RatioToDirect != 0 {
		return fmt.Sprintf("%.2f", se.RatioToDirect)
	}
	return "–"
}
