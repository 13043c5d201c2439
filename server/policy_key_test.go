package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyKeyIsKeptInTheStateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	first, err := loadPolicyKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := loadPolicyKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if first != again || first == ([32]byte{}) {
		t.Fatalf("the key read back differs from the one made (%x, %x)", first, again)
	}
	path := filepath.Join(dir, policyKeyFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v, %v: want mode 0600", fi, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, policyKeyFile+".new-*")); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
	// Deleting the file rotates the key.
	os.Remove(path)
	rotated, err := loadPolicyKey(dir)
	if err != nil || rotated == first {
		t.Fatalf("after the file was deleted: %x, %v; want a new key", rotated, err)
	}
	// Without a state directory each edge draws its own.
	a, _ := loadPolicyKey("")
	b, _ := loadPolicyKey("")
	if a == b {
		t.Fatal("two edges without a state directory drew the same key")
	}
}

func TestPolicyKeyRefusesAMalformedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, policyKeyFile)
	for _, bad := range []string{"", "not hex\n", strings.Repeat("ab", 16) + "\n"} {
		os.WriteFile(path, []byte(bad), 0o600)
		_, err := loadPolicyKey(dir)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "delete it") {
			t.Fatalf("file %q: %v; want an error naming the file and what to do", bad, err)
		}
	}
	_, err := New(Config{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", Domain: "localhost", Tokens: []string{"t"}, StateDir: dir})
	if err == nil || !strings.Contains(err.Error(), "StateDir") {
		t.Fatalf("an edge with a malformed key file: %v; want a StateDir error", err)
	}
}

// Edges of one fleet share the key, whatever their state directories;
// another fleet secret gives another key, and no key file is written.
func TestFleetEdgesShareThePolicyKey(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	ka, err := policySessionKey("fleet secret one", a)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := policySessionKey("fleet secret one", b)
	if err != nil {
		t.Fatal(err)
	}
	other, err := policySessionKey("fleet secret two", a)
	if err != nil {
		t.Fatal(err)
	}
	own, err := policySessionKey("", a)
	if err != nil {
		t.Fatal(err)
	}
	if ka != kb || ka == ([32]byte{}) {
		t.Fatalf("two edges of one fleet derived %x and %x", ka, kb)
	}
	if other == ka || own == ka {
		t.Fatal("another fleet secret, or no fleet, gave the fleet's key")
	}
	if _, err := os.Stat(filepath.Join(b, policyKeyFile)); err == nil {
		t.Fatal("a fleet edge wrote a key file it does not use")
	}
}
