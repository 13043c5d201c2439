package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/run"
	"github.com/sluicehq/sluice/bench/systems"
)

// sluiceBinary returns the sluice binary to run: -sluice-bin / SLUICE_BIN,
// or one built now from this repository into dir, the way the released
// binaries and images are built (static, stripped): a default `go build`
// links libc for the cgo resolver, which costs each process about 1 MB of
// resident memory that users of the release never pay.
func sluiceBinary(flagBin, dir string) (string, error) {
	if flagBin != "" {
		if _, err := os.Stat(flagBin); err != nil {
			return "", fmt.Errorf("sluice binary %s: %w", flagBin, err)
		}
		return flagBin, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "sluice")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/sluice")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build sluice (CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' ./cmd/sluice in %s) failed: %v\n%s", root, err, strings.TrimSpace(string(msg)))
	}
	return out, nil
}

// moduleRoot finds the sluice repository from the working directory.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root (go env GOMOD): %w; run from the sluice repository or set SLUICE_BIN", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the sluice repository: run from it or set SLUICE_BIN")
	}
	data, err := os.ReadFile(mod)
	if err != nil || !strings.Contains(string(data), "module github.com/sluicehq/sluice\n") {
		return "", fmt.Errorf("%s is not sluice's go.mod: run from the sluice repository or set SLUICE_BIN", mod)
	}
	return filepath.Dir(mod), nil
}

// buildSystems builds the System list, building sluice when it is wanted.
func buildSystems(names []string, f *runFlags, prog *run.Progress, sluiceRequired bool) ([]systems.System, func(), error) {
	cleanup := func() {}
	var bin string
	var binErr error
	// Every sluice system runs the one binary, built once.
	sluices := map[string]func(string, error) systems.System{
		plan.Sluice: systems.Sluice, plan.SluiceTLS: systems.SluiceTLS,
		plan.SluiceInspect: systems.SluiceInspect, plan.SluicePolicy: systems.SluicePolicy,
	}
	for _, n := range names {
		if sluices[n] == nil || bin != "" || binErr != nil {
			continue
		}
		dir, err := os.MkdirTemp("", "sluice-bench-bin-")
		if err != nil {
			return nil, cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		if f.sluiceBin == "" {
			prog.Printf("building sluice (go build ./cmd/sluice)")
		}
		bin, binErr = sluiceBinary(f.sluiceBin, dir)
		if binErr != nil {
			if sluiceRequired {
				return nil, cleanup, binErr
			}
			binErr = errors.New(firstLines(binErr.Error(), 4))
		}
	}
	var out []systems.System
	for _, n := range names {
		if mk := sluices[n]; mk != nil {
			out = append(out, mk(bin, binErr))
			continue
		}
		s, err := systems.New(n, bin)
		if err != nil {
			return nil, cleanup, err
		}
		out = append(out, s)
	}
	return out, cleanup, nil
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}
