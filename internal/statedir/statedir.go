// Package statedir names the directory where sluice keeps state that must
// survive a restart (leases, certificates, keys) when the user names none.
package statedir

import (
	"errors"
	"os"
	"path/filepath"
)

// Default returns the per-user state directory for sluice:
// $XDG_STATE_HOME/sluice, else ~/.local/state/sluice. It does not create it.
func Default() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "sluice"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("no state directory: neither XDG_STATE_HOME nor a home directory is set; name one explicitly")
	}
	return filepath.Join(home, ".local", "state", "sluice"), nil
}

// Ensure creates dir (and its parents) readable only by the user, and
// returns it.
func Ensure(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return dir, nil
}
