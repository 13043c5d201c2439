package bench

import "fmt"

// Metric ids and their descriptions. The gate and the capacity planner
// refer to them by id, so they are constants.
const (
	MStartup       = "startup.ms"
	MUpload        = "throughput.upload_mbps"
	MDownload      = "throughput.download_mbps"
	MCPUTotal      = "throughput.cpu_ms_per_gib"
	MCPUEdge       = "throughput.edge_cpu_ms_per_gib"
	MCtxSw         = "throughput.ctxsw_per_mib"
	MParUpload     = "parallel.upload_mbps"
	MParDownload   = "parallel.download_mbps"
	MLatP50        = "latency.p50_us"
	MLatP90        = "latency.p90_us"
	MLatP99        = "latency.p99_us"
	MLatP999       = "latency.p999_us"
	MLatMax        = "latency.max_us"
	MLoadP50       = "loaded.p50_us"
	MLoadP90       = "loaded.p90_us"
	MLoadP99       = "loaded.p99_us"
	MLoadP999      = "loaded.p999_us"
	MLoadMax       = "loaded.max_us"
	MLoadBulk      = "loaded.bulk_mbps"
	MLoadCount     = "loaded.rounds"
	MConnRate      = "connrate.per_sec"
	MHTTPRPS       = "http.rps"
	MHTTPP50       = "http.p50_us"
	MHTTPP99       = "http.p99_us"
	MHTTPP999      = "http.p999_us"
	MMemEdgeBase   = "memory.edge_base_kb"
	MMemTunnel     = "memory.tunnel_kb"
	MMemIdle       = "memory.idle_kb"
	memPerConnFmt  = "memory.c%d.kb_per_conn"
	memEdgeConnFmt = "memory.c%d.edge_kb_per_conn"
	memSuccessFmt  = "memory.c%d.success_pct"
)

// MemPerConn is the id of the per-connection memory metric at n connections.
func MemPerConn(n int) string { return fmt.Sprintf(memPerConnFmt, n) }

// MemEdgePerConn is the edge-only share of MemPerConn.
func MemEdgePerConn(n int) string { return fmt.Sprintf(memEdgeConnFmt, n) }

// MemSuccess is the id of the held-connection success rate at n connections.
func MemSuccess(n int) string { return fmt.Sprintf(memSuccessFmt, n) }

var metricDefs = map[string]metricDef{
	MStartup:     {ScenStartup, "Start to first round trip", "ms", false},
	MUpload:      {ScenThroughput, "One connection, upload", "MB/s", true},
	MDownload:    {ScenThroughput, "One connection, download", "MB/s", true},
	MCPUTotal:    {ScenThroughput, "Tunnel CPU per GiB moved (all processes)", "ms/GiB", false},
	MCPUEdge:     {ScenThroughput, "Edge CPU per GiB moved", "ms/GiB", false},
	MCtxSw:       {ScenThroughput, "Tunnel context switches per MiB moved", "per MiB", false},
	MParUpload:   {ScenParallel, "Parallel connections, upload, aggregate", "MB/s", true},
	MParDownload: {ScenParallel, "Parallel connections, download, aggregate", "MB/s", true},
	MLatP50:      {ScenLatency, "64 B round trip P50", "µs", false},
	MLatP90:      {ScenLatency, "64 B round trip P90", "µs", false},
	MLatP99:      {ScenLatency, "64 B round trip P99", "µs", false},
	MLatP999:     {ScenLatency, "64 B round trip P99.9", "µs", false},
	MLatMax:      {ScenLatency, "64 B round trip max", "µs", false},
	MLoadP50:     {ScenLoaded, "64 B round trip under load P50", "µs", false},
	MLoadP90:     {ScenLoaded, "64 B round trip under load P90", "µs", false},
	MLoadP99:     {ScenLoaded, "64 B round trip under load P99", "µs", false},
	MLoadP999:    {ScenLoaded, "64 B round trip under load P99.9", "µs", false},
	MLoadMax:     {ScenLoaded, "64 B round trip under load max", "µs", false},
	MLoadBulk:    {ScenLoaded, "Bulk upload rate meanwhile", "MB/s", true},
	MLoadCount:   {ScenLoaded, "Round trips measured (the time cap may end them early)", "rounds", true},
	MConnRate:    {ScenConnRate, "New connections (connect, round trip, close)", "conn/s", true},
	MHTTPRPS:     {ScenHTTP, "HTTP GET, 50 keep-alive connections", "req/s", true},
	MHTTPP50:     {ScenHTTP, "HTTP GET latency P50", "µs", false},
	MHTTPP99:     {ScenHTTP, "HTTP GET latency P99", "µs", false},
	MHTTPP999:    {ScenHTTP, "HTTP GET latency P99.9", "µs", false},
	MMemEdgeBase: {ScenMemory, "Edge RSS before any agent", "KB", false},
	MMemTunnel:   {ScenMemory, "Edge RSS added by one agent with one tunnel", "KB", false},
	MMemIdle:     {ScenMemory, "All processes' RSS, tunnel idle", "KB", false},
}

// metricOrder is the order metrics appear in tables and reports.
var metricOrder = []string{
	MStartup, MUpload, MDownload, MCPUTotal, MCPUEdge, MCtxSw, MParUpload, MParDownload,
	MLatP50, MLatP90, MLatP99, MLatP999, MLatMax,
	MLoadP50, MLoadP90, MLoadP99, MLoadP999, MLoadMax, MLoadBulk, MLoadCount,
	MConnRate, MHTTPRPS, MHTTPP50, MHTTPP99, MHTTPP999,
	MMemEdgeBase, MMemTunnel, MMemIdle,
}

// metricRank sorts metric ids: the fixed list first, then the memory
// figures by connection count (per-connection, edge share, success rate).
func metricRank(id string) (int, int) {
	for i, m := range metricOrder {
		if m == id {
			return i, 0
		}
	}
	var n int
	switch {
	case scan(id, memPerConnFmt, &n):
		return len(metricOrder) + 0, n
	case scan(id, memEdgeConnFmt, &n):
		return len(metricOrder) + 1, n
	case scan(id, memSuccessFmt, &n):
		return len(metricOrder) + 2, n
	}
	return len(metricOrder) + 3, 0
}

// defFor returns the description of a metric id, including the
// per-connection-count memory metrics.
func defFor(id string) metricDef {
	if d, ok := metricDefs[id]; ok {
		return d
	}
	var n int
	switch {
	case scan(id, memPerConnFmt, &n):
		return metricDef{ScenMemory, fmt.Sprintf("Memory per held connection, %d connections", n), "KB", false}
	case scan(id, memEdgeConnFmt, &n):
		return metricDef{ScenMemory, fmt.Sprintf("Edge memory per held connection, %d connections", n), "KB", false}
	case scan(id, memSuccessFmt, &n):
		return metricDef{ScenMemory, fmt.Sprintf("Connections held and live, %d attempted", n), "%", true}
	}
	return metricDef{"other", id, "", false}
}

func scan(id, format string, n *int) bool {
	_, err := fmt.Sscanf(id, format, n)
	return err == nil && fmt.Sprintf(format, *n) == id
}
