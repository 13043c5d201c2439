// Package plan says what a benchmark run measures: the systems, the
// scenarios in run order, and the knobs (Params) with the presets behind
// make bench, make bench-quick and make bench-gate. It is the bottom of the
// harness: the results record a run's Params, everything else reads them.
package plan

import (
	"fmt"
	"strings"
)

// System names.
const (
	Direct = "direct" // no tunnel: the physical limit of the machine
	Sluice = "sluice" // plain TCP between agent and edge (--insecure)
	// SluiceTLS is sluice as users run it: TLS 1.3 between agent and edge.
	SluiceTLS = "sluice-tls"
	// SluiceInspect is sluice with its HTTP agent's request inspector on,
	// as `sluice http` runs by default: measured in the HTTP scenario only,
	// beside sluice, so the inspector's cost is a ratio in one run.
	SluiceInspect = "sluice-inspect"
	// SluicePolicy is sluice with a traffic policy on its HTTP tunnel
	// (basic auth, an IP allow rule and one CEL condition), as a user
	// protects a tunnel: measured in the HTTP scenario only, beside
	// sluice, so the policy's cost is a ratio in one run.
	SluicePolicy = "sluice-policy"
	Rathole      = "rathole"
	FRP          = "frp"
	Relay        = "relay" // the harness's one-process relay, a yardstick
)

// KnownSystems lists the system names for error messages.
func KnownSystems() string {
	return strings.Join([]string{Direct, Sluice, SluiceTLS, SluiceInspect, SluicePolicy, Rathole, FRP, Relay}, ", ")
}

// Scenario names, in the order a round runs them.
const (
	Startup    = "startup"
	Throughput = "throughput"
	Parallel   = "parallel"
	Latency    = "latency"
	Loaded     = "loaded"
	ConnRate   = "connrate"
	HTTP       = "http"
	Memory     = "memory"
	WAN        = "wan"
)

// All lists every scenario in run order.
var All = []string{Startup, Throughput, Parallel, Latency, Loaded, ConnRate, HTTP, Memory, WAN}

// WANLink is one emulated internet path of the WAN scenario: the harness's
// link between agent and edge (for direct: between client and target),
// the same shape both ways.
type WANLink struct {
	RTTms    float64 `json:"rtt_ms"`
	RateMBps float64 `json:"rate_mbps"` // per direction; 0: no cap
}

// Name is the link's part of metric ids, e.g. "rtt50-100MB".
func (l WANLink) Name() string {
	if l.RateMBps <= 0 {
		return fmt.Sprintf("rtt%g-uncapped", l.RTTms)
	}
	return fmt.Sprintf("rtt%g-%gMB", l.RTTms, l.RateMBps)
}

// Title describes the link for people, e.g. "50 ms RTT, 100 MB/s".
func (l WANLink) Title() string {
	if l.RateMBps <= 0 {
		return fmt.Sprintf("%g ms RTT, no rate cap", l.RTTms)
	}
	return fmt.Sprintf("%g ms RTT, %g MB/s", l.RTTms, l.RateMBps)
}

// Params are the knobs of a run; they are recorded in the results JSON.
type Params struct {
	Preset        string   `json:"preset"`
	Systems       []string `json:"systems"`
	Scenarios     []string `json:"scenarios"`
	Rounds        int      `json:"rounds"`
	ThroughputMiB int      `json:"throughput_mib"`
	ParallelConns int      `json:"parallel_conns"`
	ParallelMiB   int      `json:"parallel_mib_per_conn"`
	LatencyWarmup int      `json:"latency_warmup"`
	LatencyRounds int      `json:"latency_rounds"`
	LatencyMaxSec float64  `json:"latency_max_sec"`
	LoadedStreams int      `json:"loaded_bulk_streams"`
	LoadedWarmup  int      `json:"loaded_warmup"`
	LoadedRounds  int      `json:"loaded_rounds"`
	LoadedMaxSec  float64  `json:"loaded_max_sec"`
	MemoryConns   []int    `json:"memory_conns"`
	MemoryWorkers int      `json:"memory_dial_workers"`
	// MemoryAgents is how many further agents, one TCP tunnel each, join
	// a fresh edge after its first, so that the edge's RSS growth divided
	// by them is what one more idle agent session costs; 0 skips it. A
	// Go edge's heap may grow to 4 MB before its first collection, so a
	// few dozen sessions would mostly measure that floor filling up.
	MemoryAgents       int       `json:"memory_agents,omitempty"`
	ConnRateWorkers    int       `json:"connrate_workers"`
	ConnRateSec        float64   `json:"connrate_sec"`
	HTTPConns          int       `json:"http_conns"`
	HTTPWarmupSec      float64   `json:"http_warmup_sec"`
	HTTPSec            float64   `json:"http_sec"`
	StartupTimeoutSec  float64   `json:"startup_timeout_sec"`
	WANLinks           []WANLink `json:"wan_links,omitempty"`
	WANMiB             int       `json:"wan_mib,omitempty"`            // one connection, each way
	WANMaxSec          float64   `json:"wan_max_sec,omitempty"`        // time cap of each transfer
	WANParallelConns   int       `json:"wan_parallel_conns,omitempty"` // 0: skip
	WANParallelMiB     int       `json:"wan_parallel_mib,omitempty"`
	WANLoadedRounds    int       `json:"wan_loaded_rounds,omitempty"` // 0: skip
	WANLoadedMaxSec    float64   `json:"wan_loaded_max_sec,omitempty"`
	ReducedForOpenFile string    `json:"reduced_for_open_files,omitempty"`
}

// Preset returns the parameters of a named preset:
//   - full: the full sizes (512 MiB, 10x64 MiB, 10,000 ping-pongs,
//     1,000 and 10,000 held connections, four WAN links), 3 rounds,
//     with the relay yardstick; `make bench`.
//   - quick: smaller sizes and one WAN link, 3 rounds; `make bench-quick`.
//   - gate: the quick sizes for the metrics the CI gate compares.
func Preset(name string) (Params, error) {
	p := Params{
		Preset:            name,
		Systems:           []string{Direct, Sluice, SluiceTLS, SluiceInspect, SluicePolicy, Rathole, FRP},
		Scenarios:         append([]string(nil), All...),
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
		MemoryAgents:      150,
		ConnRateWorkers:   4,
		ConnRateSec:       2,
		HTTPConns:         50,
		HTTPWarmupSec:     0.5,
		HTTPSec:           4,
		StartupTimeoutSec: 20,
		// The WAN presets: 10, 50 and 200 ms at 100 MB/s (a fast
		// connection across a country, a continent, the world) and 50 ms
		// with no cap, which shows what a window alone allows.
		WANLinks:         []WANLink{{10, 100}, {50, 100}, {200, 100}, {50, 0}},
		WANMiB:           128,
		WANMaxSec:        15,
		WANParallelConns: 10,
		WANParallelMiB:   16,
		WANLoadedRounds:  1000,
		WANLoadedMaxSec:  4,
	}
	switch name {
	case "full":
		// The relay is no product: it is the yardstick for what a plain
		// userspace copy costs on the machine, which the analysis needs
		// when the peers cannot be installed.
		p.Systems = append(p.Systems, Relay)
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
		p.MemoryAgents = 100
		p.ConnRateSec = 1
		p.HTTPSec = 1.5
		p.HTTPWarmupSec = 0.3
		p.WANLinks = []WANLink{{50, 100}}
		p.WANMiB = 32
		p.WANMaxSec = 6
		p.WANParallelMiB = 4
		p.WANLoadedMaxSec = 3
		if name == "gate" {
			// Only what the gate compares, with more rounds and samples so
			// the round trip's tail is steadier. The relay is the yardstick
			// the loopback figures divide by (see bench/gate).
			p.Systems = []string{Direct, Relay, Sluice}
			p.Scenarios = []string{Throughput, Latency, Memory, WAN}
			p.MemoryAgents = 0
			// The WAN case only moves data: a window that stops growing
			// shows as a one-connection rate far below the link's.
			p.WANParallelConns = 0
			p.WANLoadedRounds = 0
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
	for _, s := range All {
		known[s] = true
	}
	for _, s := range p.Scenarios {
		if !known[s] {
			return fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(All, ", "))
		}
	}
	if p.Rounds < 1 {
		return fmt.Errorf("rounds = %d: need at least 1 (3 or more for a meaningful median)", p.Rounds)
	}
	if len(p.Systems) == 0 {
		return fmt.Errorf("no systems to run: name at least one of %s", KnownSystems())
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
	if p.MemoryAgents < 0 {
		return fmt.Errorf("memory agents = %d: must not be negative (0 skips the per-session figure)", p.MemoryAgents)
	}
	if p.Has(WAN) {
		if len(p.WANLinks) == 0 || p.WANMiB < 1 || p.WANMaxSec <= 0 {
			return fmt.Errorf("the WAN scenario needs at least one link, a size of at least 1 MiB and a positive time cap")
		}
		for _, l := range p.WANLinks {
			if l.RTTms < 0 || l.RateMBps < 0 || l.RTTms > 60000 {
				return fmt.Errorf("WAN link %s: the round trip must be between 0 and 60,000 ms and the rate not negative", l.Title())
			}
		}
		if p.WANParallelConns < 0 || p.WANParallelConns > 0 && p.WANParallelMiB < 1 || p.WANLoadedRounds < 0 {
			return fmt.Errorf("WAN parallel connections and loaded rounds must not be negative, and parallel connections need at least 1 MiB each")
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

// OrderSystems puts direct first (the base of every ratio) and keeps the
// rest in the order given.
func OrderSystems(names []string) []string {
	var out []string
	for _, n := range names {
		if n == Direct {
			out = append(out, n)
		}
	}
	for _, n := range names {
		if n != Direct && !strings.EqualFold(n, "") {
			out = append(out, n)
		}
	}
	return out
}

// ParseWANName reads a link's Name back.
func ParseWANName(name string) (WANLink, bool) {
	var l WANLink
	if rest, ok := strings.CutSuffix(name, "-uncapped"); ok {
		if _, err := fmt.Sscanf(rest, "rtt%g", &l.RTTms); err == nil && l.Name() == name {
			return l, true
		}
		return WANLink{}, false
	}
	if _, err := fmt.Sscanf(name, "rtt%g-%gMB", &l.RTTms, &l.RateMBps); err == nil && l.RateMBps > 0 && l.Name() == name {
		return l, true
	}
	return WANLink{}, false
}
