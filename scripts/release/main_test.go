package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testFiles are an archive's entries from a scratch directory.
func testFiles(t *testing.T, base string) []entry {
	t.Helper()
	src := t.TempDir()
	var files []entry
	for _, f := range []struct {
		name string
		mode int64
	}{{"sluice", 0o755}, {"LICENSE", 0o644}, {"README.md", 0o644}} {
		p := filepath.Join(src, f.name)
		if err := os.WriteFile(p, []byte("contents of "+f.name), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, entry{name: base + "/" + f.name, path: p, mode: f.mode})
	}
	return files
}

// The same inputs give the same archive bytes, whatever the files' own
// times, owners and modes on disk; every entry carries the fixed time, root
// as owner and the mode the release gives it.
func TestArchivesAreReproducible(t *testing.T) {
	mtime := time.Unix(1765000000, 0).UTC()
	const base = "sluice_v1.2.3_linux_amd64"
	for _, kind := range []struct {
		name  string
		write func(io.Writer, string, []entry, time.Time) error
		read  func(*testing.T, []byte) map[string]header
	}{{"tar.gz", writeTarGz, readTarGz}, {"zip", writeZip, readZip}} {
		t.Run(kind.name, func(t *testing.T) {
			var a, b bytes.Buffer
			if err := kind.write(&a, base, testFiles(t, base), mtime); err != nil {
				t.Fatal(err)
			}
			// Other files with the same contents, written later.
			files := testFiles(t, base)
			for _, f := range files {
				os.Chtimes(f.path, time.Now(), time.Now().Add(time.Hour))
			}
			if err := kind.write(&b, base, files, mtime); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatal("two archives of the same files differ")
			}
			got := kind.read(t, a.Bytes())
			want := map[string]header{
				base + "/":          {mode: 0o755 | int64(os.ModeDir), dir: true},
				base + "/sluice":    {mode: 0o755, body: "contents of sluice"},
				base + "/LICENSE":   {mode: 0o644, body: "contents of LICENSE"},
				base + "/README.md": {mode: 0o644, body: "contents of README.md"},
			}
			if len(got) != len(want) {
				t.Fatalf("archive holds %v; want %v", got, want)
			}
			for name, w := range want {
				g, ok := got[name]
				if !ok {
					t.Errorf("archive lacks %s", name)
					continue
				}
				if !g.mtime.Equal(mtime) {
					t.Errorf("%s: time %v; want %v", name, g.mtime, mtime)
				}
				if g.body != w.body || (g.mode&0o777) != (w.mode&0o777) || g.dir != w.dir {
					t.Errorf("%s: %+v; want %+v", name, g, w)
				}
			}
		})
	}
}

type header struct {
	mode  int64
	mtime time.Time
	body  string
	dir   bool
}

func readTarGz(t *testing.T, b []byte) map[string]header {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header names %q at %v; want neither", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	m := map[string]header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "root" || h.Gname != "root" {
			t.Errorf("%s: owner %d:%d (%s:%s); want root", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		body, _ := io.ReadAll(tr)
		m[h.Name] = header{mode: h.Mode, mtime: h.ModTime, body: string(body), dir: h.Typeflag == tar.TypeDir}
	}
}

func readZip(t *testing.T, b []byte) map[string]header {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]header{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(rc)
		rc.Close()
		m[f.Name] = header{mode: int64(f.Mode().Perm()), mtime: f.Modified, body: string(body), dir: f.Mode().IsDir()}
	}
	return m
}

// SHA256SUMS is in sha256sum's own format: `sha256sum -c` checks the
// archives with it.
func TestSumsAreCheckedBySha256sum(t *testing.T) {
	tool, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Skip("sha256sum (coreutils) is not installed")
	}
	dir := t.TempDir()
	for _, n := range []string{"b.zip", "a.tar.gz"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("archive "+n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeSums(dir, []string{"b.zip", "a.tar.gz"}); err != nil {
		t.Fatal(err)
	}
	sums, _ := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if lines := strings.Split(strings.TrimSpace(string(sums)), "\n"); len(lines) != 2 || !strings.HasSuffix(lines[0], "  a.tar.gz") {
		t.Errorf("SHA256SUMS is not two lines sorted by name:\n%s", sums)
	}
	cmd := exec.Command(tool, "-c", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "b.zip"), []byte("tampered"), 0o644)
	cmd = exec.Command(tool, "-c", "SHA256SUMS")
	cmd.Dir = dir
	if err := cmd.Run(); err == nil {
		t.Fatal("sha256sum -c accepted a changed archive")
	}
}

// Bad input is refused with a message saying what to pass.
func TestRunRefusesBadInput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	for _, tc := range []struct {
		version, epoch string
		targets        []string
		want           string
	}{
		{"", "1765000000", Targets, "give -version"},
		{"v1/../x", "1765000000", Targets, "give -version"},
		{"v1.2.3", "", Targets, "SOURCE_DATE_EPOCH"},
		{"v1.2.3", "1765000000", []string{"linux"}, "GOOS/GOARCH"},
	} {
		err := run(out, tc.version, "", tc.targets, tc.epoch)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q, epoch %q, %v) = %v; want an error with %q", tc.version, tc.epoch, tc.targets, err, tc.want)
		}
	}
}
