package statedir

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultPrefersXDGStateHome(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/var/lib/x")
	got, err := Default()
	if err != nil || got != "/var/lib/x/sluice" {
		t.Fatalf("Default() = %q, %v; want /var/lib/x/sluice", got, err)
	}
}

func TestDefaultFallsBackToHome(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "relative/ignored")
	t.Setenv("HOME", "/home/u")
	got, err := Default()
	if err != nil || got != "/home/u/.local/state/sluice" {
		t.Fatalf("Default() = %q, %v", got, err)
	}
}

func TestEnsureCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if _, err := Ensure(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("stat %s: %v %v", dir, fi.Mode(), err)
	}
}
