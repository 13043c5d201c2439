package main

import (
	"io"
	"strings"
	"testing"
)

func TestMemoryLimitSizes(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		err  string
	}{
		{"256MiB", 256 << 20, ""},
		{"256m", 256 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"1.5G", 3 << 29, ""},
		{"2gb", 2 << 30, ""},
		{"536870912", 512 << 20, ""},
		{"off", 0, ""},
		{"0", 0, ""},
		{"lots", 0, "not a size"},
		{"12XB", 0, "not a size"},
		{"-1GiB", 0, "not a size"},
		{"1MiB", 0, "below 32MiB"},
	}
	for _, tc := range cases {
		var m memoryLimit
		err := m.Set(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Set(%q) = %v; want an error saying %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || m.bytes != tc.want {
			t.Errorf("Set(%q) = %d, %v; want %d", tc.in, m.bytes, err, tc.want)
		}
	}
}

// TestMemoryLimitFromFlagEnvAndFile: --memory-limit is read like every other
// server flag, and a bad value names where it came from.
func TestMemoryLimitFromFlagEnvAndFile(t *testing.T) {
	t.Setenv("SLUICE_MEMORY_LIMIT", "")
	sc, err := parseServer([]string{"--token", "t", "--memory-limit", "300MiB"}, io.Discard)
	if err != nil || sc.memLimit.bytes != 300<<20 {
		t.Fatalf("flag: %+v, %v", sc.memLimit, err)
	}
	file := writeFile(t, "token: t\nmemory_limit: 400MiB\n")
	if sc, err = parseServer([]string{"-c", file}, io.Discard); err != nil || sc.memLimit.bytes != 400<<20 {
		t.Fatalf("file: %+v, %v", sc.memLimit, err)
	}
	t.Setenv("SLUICE_MEMORY_LIMIT", "500MiB")
	if sc, err = parseServer([]string{"-c", file}, io.Discard); err != nil || sc.memLimit.bytes != 500<<20 {
		t.Fatalf("env over file: %+v, %v", sc.memLimit, err)
	}
	t.Setenv("SLUICE_MEMORY_LIMIT", "much")
	if _, err = parseServer([]string{"--token", "t"}, io.Discard); err == nil || !strings.Contains(err.Error(), "SLUICE_MEMORY_LIMIT") {
		t.Fatalf("bad env value: %v; want an error naming SLUICE_MEMORY_LIMIT", err)
	}
	t.Setenv("SLUICE_MEMORY_LIMIT", "")
	if sc, err = parseServer([]string{"--token", "t"}, io.Discard); err != nil || sc.memLimit.given {
		t.Fatalf("unset: %+v, %v; want the runtime's own (GOMEMLIMIT) left alone", sc.memLimit, err)
	}
}

// TestTrimWhenQuiet: memory is returned when the edge holds a lot of it
// and no collection ran in the interval (it is quiet); not while it
// collects on its own (busy); not twice for the same quiet spell, unless
// its goroutines (connections) have halved since, which a trim during the
// tail of a burst needs.
func TestTrimWhenQuiet(t *testing.T) {
	const mib = 1 << 20
	var tr trimmer
	steps := []struct {
		cycles, held, goroutines uint64
		want                     bool
	}{
		{10, 600 * mib, 2000, false}, // collections ran: busy
		{14, 600 * mib, 2000, false}, // still busy
		{14, 600 * mib, 1800, true},  // quiet, holding its peak
	}
	for i, s := range steps {
		if got := tr.due(s.cycles, s.held, s.goroutines); got != s.want {
			t.Fatalf("step %d (cycles %d, held %d MiB): due = %v; want %v", i, s.cycles, s.held/mib, got, s.want)
		}
	}
	tr.trimmed(15, 1800) // the trim's own collection, in the burst's tail
	if tr.due(15, 500*mib, 1500) {
		t.Fatal("trimmed again with no collection since and most connections still open")
	}
	if !tr.due(15, 500*mib, 13) {
		t.Fatal("not trimmed again once the connections of the tail had gone")
	}
	tr.trimmed(16, 13)
	if tr.due(16, 80*mib, 13) {
		t.Fatal("trimmed again with nothing changed since the last trim")
	}
	if tr.due(17, 300*mib, 900) {
		t.Fatal("trimmed in an interval in which a collection ran")
	}
	if !tr.due(17, 300*mib, 900) {
		t.Fatal("not trimmed once quiet again after new load")
	}
	if tr.due(18, 10*mib, 13) || tr.due(18, 10*mib, 13) {
		t.Fatal("trimmed with little held")
	}
}
