package bench

import (
	"fmt"
	"strings"
)

// Scenario names, in the order a round runs them.
const (
	ScenStartup    = "startup"
	ScenThroughput = "throughput"
	ScenParallel   = "parallel"
	ScenLatency    = "latency"
	ScenLoaded     = "loaded"
	ScenConnRate   = "connrate"
	ScenHTTP       = "http"
	ScenMemory     = "memory"
)

// AllScenarios lists every scenario in run order.
var AllScenarios = []string{ScenStartup, ScenThroughput, ScenParallel, ScenLatency, ScenLoaded, ScenConnRate, ScenHTTP, ScenMemory}

// Params are the knobs of a run; they are recorded in the results JSON.
type Params struct {
	Preset             string   `json:"preset"`
	Systems            []string `json:"systems"`
	Scenarios          []string `json:"scenarios"`
	Rounds             int      `json:"rounds"`
	ThroughputMiB      int      `json:"throughput_mib"`
	ParallelConns      int      `json:"parallel_conns"`
	ParallelMiB        int      `json:"parallel_mib_per_conn"`
	LatencyWarmup      int      `json:"latency_warmup"`
	LatencyRounds      int      `json:"latency_rounds"`
	LatencyMaxSec      float64  `json:"latency_max_sec"`
	LoadedStreams      int      `json:"loaded_bulk_streams"`
	LoadedWarmup       int      `json:"loaded_warmup"`
	LoadedRounds       int      `json:"loaded_rounds"`
	LoadedMaxSec       float64  `json:"loaded_max_sec"`
	MemoryConns        []int    `json:"memory_conns"`
	MemoryWorkers      int      `json:"memory_dial_workers"`
	ConnRateWorkers    int      `json:"connrate_workers"`
	ConnRateSec        float64  `json:"connrate_sec"`
	HTTPConns          int      `json:"http_conns"`
	HTTPWarmupSec      float64  `json:"http_warmup_sec"`
	HTTPSec            float64  `json:"http_sec"`
	StartupTimeoutSec  float64  `json:"startup_timeout_sec"`
	SluiceInjectDelay  string   `json:"sluice_inject_delay,omitempty"`
	ReducedForOpenFile string   `json:"reduced_for_open_files,omitempty"`
}

// PresetParams returns the parameters of a named preset:
//   - full: the sizes (512 MiB, 10x64 MiB, 10,000 ping-pongs,
//     1,000 and 10,000 held connections), 3 rounds, with the relay
//     yardstick; `make bench`.
//   - quick: smaller sizes, 3 rounds; `make bench-quick`.
//   - gate: the quick sizes for the metrics the CI gate compares.
func PresetParams(name string) (Params, error) {
	p := Params{
		Preset:            name,
		Systems:           []string{SystemDirect, SystemSluice, SystemRathole, SystemFRP},
		Scenarios:         append([]string(nil), AllScenarios...),
		Rounds:            3,
		ThroughputMiB:     512,
		ParallelConns:     10,
		ParallelMiB:       64,
		LatencyWarmup:     1000,
		LatencyRounds:     10000,
		LatencyMaxSec:     20,
		LoadedStreams:     2,
		LoadedWarmup:      1000,
		LoadedRounds:      10000,
		LoadedMaxSec:      8,
		MemoryConns:       []int{1000, 10000},
		MemoryWorkers:     32,
		ConnRateWorkers:   4,
		ConnRateSec:       2,
		HTTPConns:         50,
		HTTPWarmupSec:     0.5,
		HTTPSec:           4,
		StartupTimeoutSec: 20,
	}
	switch name {
	case "full":
		// The relay is no product: it is the yardstick for what a plain
		// userspace copy costs on the machine, which the analysis needs
		// when the peers cannot be installed.
		p.Systems = append(p.Systems, SystemRelay)
	case "quick", "gate":
		p.ThroughputMiB = 128
		p.ParallelMiB = 16
		p.LatencyWarmup = 1000
		p.LatencyRounds = 5000
		p.LatencyMaxSec = 5
		p.LoadedWarmup = 200
		p.LoadedRounds = 2000
		p.LoadedMaxSec = 3
		p.MemoryConns = []int{1000}
		p.ConnRateSec = 1
		p.HTTPSec = 1.5
		p.HTTPWarmupSec = 0.3
		if name == "gate" {
			// Only what the gate compares, with more rounds and samples so
			// the median P99.9 (10 slowest of 10,000) is steadier.
			p.Systems = []string{SystemDirect, SystemSluice}
			p.Scenarios = []string{ScenThroughput, ScenLatency, ScenMemory}
			p.Rounds = 5
			p.LatencyRounds = 10000
			p.LatencyMaxSec = 5
		}
	default:
		return Params{}, fmt.Errorf("unknown preset %q (known: full, quick, gate)", name)
	}
	return p, nil
}

// Validate checks the parameters before anything starts.
func (p Params) Validate() error {
	known := map[string]bool{}
	for _, s := range AllScenarios {
		known[s] = true
	}
	for _, s := range p.Scenarios {
		if !known[s] {
			return fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(AllScenarios, ", "))
		}
	}
	if p.Rounds < 1 {
		return fmt.Errorf("rounds = %d: need at least 1 (3 or more for a meaningful median)", p.Rounds)
	}
	if len(p.Systems) == 0 {
		return fmt.Errorf("no systems to run: name at least one of direct, sluice, rathole, frp, relay")
	}
	if p.ThroughputMiB < 1 || p.ParallelMiB < 1 || p.ParallelConns < 1 {
		return fmt.Errorf("throughput sizes must be at least 1 MiB and 1 connection")
	}
	if p.LatencyRounds < 1 || p.LoadedRounds < 1 || p.LoadedStreams < 1 {
		return fmt.Errorf("latency rounds and bulk streams must be at least 1")
	}
	for _, n := range p.MemoryConns {
		if n < 1 {
			return fmt.Errorf("memory connection count %d: must be positive", n)
		}
	}
	if p.HTTPConns < 1 || p.HTTPSec <= 0 || p.ConnRateSec <= 0 || p.ConnRateWorkers < 1 || p.MemoryWorkers < 1 {
		return fmt.Errorf("HTTP connections, durations and worker counts must be positive")
	}
	return nil
}

// Has reports whether a scenario is selected.
func (p Params) Has(s string) bool {
	for _, x := range p.Scenarios {
		if x == s {
			return true
		}
	}
	return false
}
