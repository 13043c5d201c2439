package proc

import (
	"os"
	"testing"
	"time"
)

func TestParseVmRSS(t *testing.T) {
	status := []byte("Name:\tsluice\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\nThreads:\t5\n")
	kb, err := parseVmRSS(status)
	if err != nil || kb != 4321 {
		t.Fatalf("parseVmRSS = %d, %v; want 4321", kb, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tx\n")); err == nil {
		t.Fatal("missing VmRSS must be an error")
	}
}

func TestParseResident(t *testing.T) {
	status := []byte("Name:\tsluice\nVmRSS:\t    4321 kB\nRssAnon:\t    1000 kB\nRssFile:\t    3300 kB\nRssShmem:\t      21 kB\n")
	r, err := parseResident(status)
	if err != nil || r != (Resident{RSS: 4321, Anon: 1000, File: 3300, Shmem: 21}) {
		t.Fatalf("parseResident = %+v, %v; want 4321 = 1000 anon + 3300 file + 21 shmem", r, err)
	}
	if _, err := parseResident([]byte("Name:\tx\nVmRSS:\t 5 kB\n")); err == nil {
		t.Fatal("a status without RssAnon must be an error, not zeros")
	}
}

func TestParseStatCPU(t *testing.T) {
	// The command name holds spaces and a ')' to make sure parsing starts
	// after the last ')'. utime=150, stime=50 ticks.
	stat := []byte("1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 1 0 100 1000 10 18446744073709551615")
	d, err := parseStatCPU(stat)
	if err != nil || d != 2*time.Second {
		t.Fatalf("parseStatCPU = %v, %v; want 2s", d, err)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Fatal("malformed stat must be an error")
	}
}

func TestParseCtxSwitches(t *testing.T) {
	status := []byte("Name:\tx\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n")
	if got := parseCtxSwitches(status); got != 127 {
		t.Fatalf("parseCtxSwitches = %d, want 127", got)
	}
}

func TestOwnRSSAndCPUReadable(t *testing.T) {
	if kb, err := RSSKB(os.Getpid()); err != nil || kb <= 0 {
		t.Fatalf("RSSKB(self) = %d, %v", kb, err)
	}
	if r, err := ResidentKB(os.Getpid()); err != nil || r.Anon <= 0 || r.File <= 0 || r.Anon+r.File+r.Shmem != r.RSS {
		t.Fatalf("ResidentKB(self) = %+v, %v; want anon, file and shmem adding up to RSS", r, err)
	}
	if _, err := CPUTime(os.Getpid()); err != nil {
		t.Fatalf("CPUTime(self): %v", err)
	}
	if n, err := CtxSwitches(os.Getpid()); err != nil || n <= 0 {
		t.Fatalf("CtxSwitches(self) = %d, %v", n, err)
	}
}
