package results

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/bench/plan"
)

// Metric ids and their descriptions. The gate and the capacity planner
// refer to them by id, so they are constants.
const (
	MStartup     = "startup.ms"
	MUpload      = "throughput.upload_mbps"
	MDownload    = "throughput.download_mbps"
	MCPUTotal    = "throughput.cpu_ms_per_gib"
	MCPUEdge     = "throughput.edge_cpu_ms_per_gib"
	MCtxSw       = "throughput.ctxsw_per_mib"
	MParUpload   = "parallel.upload_mbps"
	MParDownload = "parallel.download_mbps"
	MLatP50      = "latency.p50_us"
	MLatP90      = "latency.p90_us"
	MLatP99      = "latency.p99_us"
	MLatP999     = "latency.p999_us"
	MLatMax      = "latency.max_us"
	MLoadP50     = "loaded.p50_us"
	MLoadP90     = "loaded.p90_us"
	MLoadP99     = "loaded.p99_us"
	MLoadP999    = "loaded.p999_us"
	MLoadMax     = "loaded.max_us"
	MLoadBulk    = "loaded.bulk_mbps"
	MLoadCount   = "loaded.rounds"
	MConnRate    = "connrate.per_sec"
	MHTTPRPS     = "http.rps"
	MHTTPP50     = "http.p50_us"
	MHTTPP99     = "http.p99_us"
	MHTTPP999    = "http.p999_us"
	// MHTTPEdgeCPU is the edge processes' CPU time over the HTTP run
	// (warm-up included) divided by the requests answered in it.
	MHTTPEdgeCPU = "http.edge_cpu_us_per_req"
	MMemEdgeBase = "memory.edge_base_kb"
	MMemTunnel   = "memory.tunnel_kb"
	MMemIdle     = "memory.idle_kb"
	// The edge's RSS growth per further idle agent session (one TCP tunnel
	// each), over Params.MemoryAgents agents after the first, and its
	// anonymous (heap, stacks, runtime) and file-backed (code) parts.
	MMemSession     = "memory.session_kb"
	MMemSessionAnon = "memory.session_anon_kb"
	MMemSessionFile = "memory.session_file_kb"
	// The anonymous part of MMemTunnel: the first agent's growth less the
	// code pages it is the first to run.
	MMemTunnelAnon   = "memory.tunnel_anon_kb"
	MemPerConnFormat = "memory.c%d.kb_per_conn"
	memEdgeConnFmt   = "memory.c%d.edge_kb_per_conn"
	memSuccessFmt    = "memory.c%d.success_pct"
)

// MemPerConn is the id of the per-connection memory metric at n connections.
func MemPerConn(n int) string { return fmt.Sprintf(MemPerConnFormat, n) }

// MemEdgePerConn is the edge-only share of MemPerConn.
func MemEdgePerConn(n int) string { return fmt.Sprintf(memEdgeConnFmt, n) }

// MemSuccess is the id of the held-connection success rate at n connections.
func MemSuccess(n int) string { return fmt.Sprintf(memSuccessFmt, n) }

// Def describes a metric before any value exists.
type Def struct {
	Scenario, Title, Unit string
	Higher                bool // higher is better
}

var defs = map[string]Def{
	MStartup:        {plan.Startup, "Start to first round trip", "ms", false},
	MUpload:         {plan.Throughput, "One connection, upload", "MB/s", true},
	MDownload:       {plan.Throughput, "One connection, download", "MB/s", true},
	MCPUTotal:       {plan.Throughput, "Tunnel CPU per GiB moved (all processes)", "ms/GiB", false},
	MCPUEdge:        {plan.Throughput, "Edge CPU per GiB moved", "ms/GiB", false},
	MCtxSw:          {plan.Throughput, "Tunnel context switches per MiB moved", "per MiB", false},
	MParUpload:      {plan.Parallel, "Parallel connections, upload, aggregate", "MB/s", true},
	MParDownload:    {plan.Parallel, "Parallel connections, download, aggregate", "MB/s", true},
	MLatP50:         {plan.Latency, "64 B round trip P50", "µs", false},
	MLatP90:         {plan.Latency, "64 B round trip P90", "µs", false},
	MLatP99:         {plan.Latency, "64 B round trip P99", "µs", false},
	MLatP999:        {plan.Latency, "64 B round trip P99.9", "µs", false},
	MLatMax:         {plan.Latency, "64 B round trip max", "µs", false},
	MLoadP50:        {plan.Loaded, "64 B round trip under load P50", "µs", false},
	MLoadP90:        {plan.Loaded, "64 B round trip under load P90", "µs", false},
	MLoadP99:        {plan.Loaded, "64 B round trip under load P99", "µs", false},
	MLoadP999:       {plan.Loaded, "64 B round trip under load P99.9", "µs", false},
	MLoadMax:        {plan.Loaded, "64 B round trip under load max", "µs", false},
	MLoadBulk:       {plan.Loaded, "Bulk upload rate meanwhile", "MB/s", true},
	MLoadCount:      {plan.Loaded, "Round trips measured (the time cap may end them early)", "rounds", true},
	MConnRate:       {plan.ConnRate, "New connections (connect, round trip, close)", "conn/s", true},
	MHTTPRPS:        {plan.HTTP, "HTTP GET, 50 keep-alive connections", "req/s", true},
	MHTTPP50:        {plan.HTTP, "HTTP GET latency P50", "µs", false},
	MHTTPP99:        {plan.HTTP, "HTTP GET latency P99", "µs", false},
	MHTTPP999:       {plan.HTTP, "HTTP GET latency P99.9", "µs", false},
	MHTTPEdgeCPU:    {plan.HTTP, "Edge CPU per HTTP request", "µs", false},
	MMemEdgeBase:    {plan.Memory, "Edge RSS before any agent", "KB", false},
	MMemTunnel:      {plan.Memory, "Edge RSS added by one agent with one tunnel", "KB", false},
	MMemIdle:        {plan.Memory, "All processes' RSS, tunnel idle", "KB", false},
	MMemTunnelAnon:  {plan.Memory, "Edge RSS added by one agent with one tunnel, anonymous (not code)", "KB", false},
	MMemSession:     {plan.Memory, "Edge RSS per further idle agent session (one tunnel each)", "KB", false},
	MMemSessionAnon: {plan.Memory, "Edge RSS per further idle agent session, anonymous (heap, stacks)", "KB", false},
	MMemSessionFile: {plan.Memory, "Edge RSS per further idle agent session, file-backed (code)", "KB", false},
}

// order is the order metrics appear in tables and reports.
var order = []string{
	MStartup, MUpload, MDownload, MCPUTotal, MCPUEdge, MCtxSw, MParUpload, MParDownload,
	MLatP50, MLatP90, MLatP99, MLatP999, MLatMax,
	MLoadP50, MLoadP90, MLoadP99, MLoadP999, MLoadMax, MLoadBulk, MLoadCount,
	MConnRate, MHTTPRPS, MHTTPP50, MHTTPP99, MHTTPP999, MHTTPEdgeCPU,
	MMemEdgeBase, MMemTunnel, MMemTunnelAnon, MMemSession, MMemSessionAnon, MMemSessionFile, MMemIdle,
}

// rank sorts metric ids: the fixed list first, then the memory
// figures by connection count (per-connection, edge share, success rate).
func rank(id string) (int, int) {
	for i, m := range order {
		if m == id {
			return i, 0
		}
	}
	var n int
	switch {
	case Scan(id, MemPerConnFormat, &n):
		return len(order) + 0, n
	case Scan(id, memEdgeConnFmt, &n):
		return len(order) + 1, n
	case Scan(id, memSuccessFmt, &n):
		return len(order) + 2, n
	}
	if _, _, ok := ParseWAN(id); ok {
		// Equal ranks keep the order of first use: links in the order
		// the run took them, figures in the order it measured them.
		return len(order) + 3, 0
	}
	return len(order) + 4, 0
}

// WAN metric figures: the part after "wan.<link>.".
const (
	WANUpload   = "upload_mbps"
	WANDownload = "download_mbps"
	WANParallel = "parallel_mbps"
	// WANFairness is how far the most unequal of the parallel connections
	// is from their mean rate, as a factor (1: all equal; 2: one got half
	// or twice the mean).
	WANFairness = "fairness"
	WANLoadP50  = "loaded_p50_us"
	WANLoadP99  = "loaded_p99_us"
	WANLoadP999 = "loaded_p999_us"
	WANLoadBulk = "loaded_bulk_mbps"
)

var wanDefs = map[string]Def{
	WANUpload:   {plan.WAN, "one connection, upload", "MB/s", true},
	WANDownload: {plan.WAN, "one connection, download", "MB/s", true},
	WANParallel: {plan.WAN, "parallel connections, download, aggregate", "MB/s", true},
	WANFairness: {plan.WAN, "parallel connections, worst rate vs mean", "x", false},
	WANLoadP50:  {plan.WAN, "64 B round trip under 2 bulk P50", "µs", false},
	WANLoadP99:  {plan.WAN, "64 B round trip under 2 bulk P99", "µs", false},
	WANLoadP999: {plan.WAN, "64 B round trip under 2 bulk P99.9", "µs", false},
	WANLoadBulk: {plan.WAN, "bulk upload rate meanwhile", "MB/s", true},
}

// WANMetric is the id of a WAN figure over a link.
func WANMetric(l plan.WANLink, figure string) string { return "wan." + l.Name() + "." + figure }

// ParseWAN splits a WAN metric id into its link and figure.
func ParseWAN(id string) (plan.WANLink, string, bool) {
	rest, ok := strings.CutPrefix(id, "wan.")
	if !ok {
		return plan.WANLink{}, "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return plan.WANLink{}, "", false
	}
	l, ok := plan.ParseWANName(rest[:i])
	if _, known := wanDefs[rest[i+1:]]; !ok || !known {
		return plan.WANLink{}, "", false
	}
	return l, rest[i+1:], true
}

// DefFor returns the description of a metric id, including the
// per-connection-count memory metrics.
func DefFor(id string) Def {
	if d, ok := defs[id]; ok {
		return d
	}
	var n int
	switch {
	case Scan(id, MemPerConnFormat, &n):
		return Def{plan.Memory, fmt.Sprintf("Memory per held connection, %d connections", n), "KB", false}
	case Scan(id, memEdgeConnFmt, &n):
		return Def{plan.Memory, fmt.Sprintf("Edge memory per held connection, %d connections", n), "KB", false}
	case Scan(id, memSuccessFmt, &n):
		return Def{plan.Memory, fmt.Sprintf("Connections held and live, %d attempted", n), "%", true}
	}
	if l, fig, ok := ParseWAN(id); ok {
		d := wanDefs[fig]
		d.Title = l.Title() + ": " + d.Title
		return d
	}
	return Def{"other", id, "", false}
}

// Scan reports whether id is format with one number, stored in n.
func Scan(id, format string, n *int) bool {
	_, err := fmt.Sscanf(id, format, n)
	return err == nil && fmt.Sprintf(format, *n) == id
}
