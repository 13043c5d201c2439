package server

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The key that seals the traffic policy's sign-in cookies (OpenID Connect
// sessions) is the edge's, kept in its state directory, so a visitor stays
// signed in across an agent's reconnect and an edge restart alike. Without
// a state directory it is drawn at start and sessions end with the process.
// Replacing or deleting the file rotates it: cookies sealed with the old key
// no longer open, and their visitors are sent to sign in again.
//
// An edge in a fleet derives the key from the fleet's secret instead, so
// every edge opens a cookie any of them sealed: a visitor signed in through
// one edge stays signed in when a load balancer or DNS sends the next
// request to another, or when that edge is replaced. Changing the fleet
// secret rotates it.

// policyKeyFile is the key's file in the state directory: 32 random bytes,
// hex-encoded, on one line.
const policyKeyFile = "policy-session.key"

// policySessionKey is the edge's key: the fleet's when it has a fleet
// secret, else the one kept in its state directory.
func policySessionKey(fleetSecret, stateDir string) ([32]byte, error) {
	if fleetSecret == "" {
		return loadPolicyKey(stateDir)
	}
	var key [32]byte
	b, err := hkdf.Key(sha256.New, []byte(fleetSecret), nil, "sluice sign-in sessions", len(key))
	if err != nil {
		return key, fmt.Errorf("derive the sign-in session key from the fleet secret: %w", err)
	}
	copy(key[:], b)
	return key, nil
}

// loadPolicyKey returns the key kept in dir, making it on first use.
func loadPolicyKey(dir string) (key [32]byte, err error) {
	if dir == "" {
		_, _ = rand.Read(key[:])
		return key, nil
	}
	path := filepath.Join(dir, policyKeyFile)
	for range 2 {
		b, err := os.ReadFile(path)
		if err == nil {
			return parsePolicyKey(path, b)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return key, fmt.Errorf("read the sign-in session key %s: %w", path, err)
		}
		if err := createPolicyKey(dir, path); err != nil {
			return key, err
		}
		// Read back what is there: an edge starting beside this one with
		// the same directory may have made it first.
	}
	return key, fmt.Errorf("the sign-in session key %s vanished while it was being made", path)
}

func parsePolicyKey(path string, b []byte) (key [32]byte, err error) {
	raw, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(raw) != len(key) {
		return key, fmt.Errorf("the sign-in session key %s is not %d hex-encoded bytes: delete it and the edge makes a new one (visitors signed in with OpenID Connect then sign in again)", path, len(key))
	}
	copy(key[:], raw)
	return key, nil
}

// createPolicyKey writes a new key to path unless a file is already there:
// it is written aside and linked into place, which fails rather than
// replace a key another edge made in the meantime.
func createPolicyKey(dir, path string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make the state directory %s for the sign-in session key: %w", dir, err)
	}
	var key [32]byte
	_, _ = rand.Read(key[:])
	tmp, err := os.CreateTemp(dir, policyKeyFile+".new-*")
	if err != nil {
		return fmt.Errorf("write the sign-in session key in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(key[:]) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("write the sign-in session key %s: %w", path, err)
	}
	return nil
}
