package server

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const revokeFile = `# The edge's tokens.
tokens:
  - token: alice-secret   # alice's laptop
    owner: alice
    names: ["alice-*"]
  - sha256: %s
    owner: bob
  - token: carol-secret
    owner: carol
    max_tunnels: 3
`

func sha(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// TestRemoveTokenFromFile: a revoked token leaves the tokens file, by its
// token or its sha256, and everything else stays: the other entries, their
// fields and the comments. The result still loads.
func TestRemoveTokenFromFile(t *testing.T) {
	bobHash := sha("bob-secret")
	content := strings.Replace(revokeFile, "%s", hex.EncodeToString(bobHash[:]), 1)
	for _, tc := range []struct {
		name   string
		token  string
		gone   string
		owners []string
	}{
		{"by token", "alice-secret", "alice-secret", []string{"bob", "carol"}},
		{"by sha256", "bob-secret", hex.EncodeToString(bobHash[:]), []string{"alice", "carol"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "tokens.yaml")
			if err := os.WriteFile(file, []byte(content), 0o640); err != nil {
				t.Fatal(err)
			}
			n, err := removeTokenFromFile(file, sha(tc.token))
			if err != nil || n != 1 {
				t.Fatalf("removed %d entries, err %v; want 1", n, err)
			}
			b, _ := os.ReadFile(file)
			out := string(b)
			if strings.Contains(out, tc.gone) || !strings.Contains(out, "# The edge's tokens.") || !strings.Contains(out, "max_tunnels: 3") {
				t.Fatalf("after removing %s:\n%s", tc.token, out)
			}
			rules, err := LoadTokensFile(file)
			if err != nil {
				t.Fatalf("the rewritten file does not load: %v\n%s", err, out)
			}
			var owners []string
			for _, r := range rules {
				owners = append(owners, r.Owner)
			}
			if strings.Join(owners, ",") != strings.Join(tc.owners, ",") {
				t.Fatalf("owners left %v, want %v", owners, tc.owners)
			}
			if st, _ := os.Stat(file); st.Mode().Perm() != 0o640 {
				t.Fatalf("the file's mode became %v, want 0640 kept", st.Mode().Perm())
			}
		})
	}
}

func TestRemoveTokenFromFileRefusals(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "one.yaml")
	os.WriteFile(one, []byte("tokens:\n  - token: only\n    owner: me\n"), 0o600)
	if _, err := removeTokenFromFile(one, sha("only")); err == nil || !strings.Contains(err.Error(), "last token") {
		t.Errorf("removing the last token: %v, want a refusal that says why", err)
	}
	if b, _ := os.ReadFile(one); !strings.Contains(string(b), "only") {
		t.Errorf("a refused removal changed the file:\n%s", b)
	}
	if n, err := removeTokenFromFile(one, sha("absent")); n != 0 || err != nil {
		t.Errorf("an absent token: %d, %v; want nothing removed and no error", n, err)
	}
	if _, err := removeTokenFromFile(filepath.Join(dir, "missing.yaml"), sha("x")); err == nil {
		t.Error("a missing file: no error")
	}
}
