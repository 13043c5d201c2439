// Command release builds sluice's release archives: one per target
// (tar.gz, zip for Windows), each holding the static binary, the LICENSE and
// the README, and a SHA256SUMS beside them that `sha256sum -c` reads.
//
// The same commit gives the same bytes: the binaries are built with
// -trimpath, without cgo and with an empty build ID, the version comes from
// the flags rather than the clock or the machine, and every archive entry
// has a fixed time (the commit's, SOURCE_DATE_EPOCH), owner and order.
// `make release` runs it with the version stamped from git; `make
// release-check` builds twice and compares the checksums.
package main

import (
	"archive/tar"
	"archive/zip"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Targets is every platform a release carries.
var Targets = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64"}

// extraFiles go into every archive beside the binary, from the repository root.
var extraFiles = []string{"LICENSE", "README.md"}

func main() {
	out := flag.String("out", "dist", "directory to write the archives and SHA256SUMS to (emptied first)")
	version := flag.String("version", "", "the release's version, e.g. v1.2.3 (it names the archives)")
	ldflags := flag.String("ldflags", "", "linker flags that stamp the build (see internal/buildinfo)")
	targets := flag.String("targets", strings.Join(Targets, " "), "GOOS/GOARCH pairs to build, separated by spaces")
	goTool := flag.String("go", "go", "the go command to build with")
	epoch := flag.String("epoch", os.Getenv("SOURCE_DATE_EPOCH"), "time of every archive entry, in Unix seconds (the commit's time; default $SOURCE_DATE_EPOCH)")
	flag.Parse()
	goCmd = *goTool
	if err := run(*out, *version, *ldflags, strings.Fields(*targets), *epoch); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

func run(out, version, ldflags string, targets []string, epoch string) error {
	if !versionRE.MatchString(version) {
		return fmt.Errorf("version %q: give -version as letters, digits and . _ + - (e.g. v1.2.3)", version)
	}
	secs, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil || secs <= 0 {
		return fmt.Errorf("epoch %q: give -epoch (or SOURCE_DATE_EPOCH) as Unix seconds, e.g. $(git log -1 --format=%%ct)", epoch)
	}
	mtime := time.Unix(secs, 0).UTC()
	if len(targets) == 0 {
		return errors.New("no targets: give -targets as GOOS/GOARCH pairs")
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	work := filepath.Join(out, ".build")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	var archives []string
	for _, t := range targets {
		goos, goarch, ok := strings.Cut(t, "/")
		if !ok || goos == "" || goarch == "" {
			return fmt.Errorf("target %q: write it as GOOS/GOARCH, e.g. linux/amd64", t)
		}
		exe := "sluice"
		if goos == "windows" {
			exe += ".exe"
		}
		bin := filepath.Join(work, goos+"-"+goarch, exe)
		if err := build(bin, goos, goarch, ldflags); err != nil {
			return err
		}
		base := fmt.Sprintf("sluice_%s_%s_%s", version, goos, goarch)
		files := []entry{{name: base + "/" + exe, path: bin, mode: 0o755}}
		for _, f := range extraFiles {
			files = append(files, entry{name: base + "/" + f, path: f, mode: 0o644})
		}
		name := base + ".tar.gz"
		write := writeTarGz
		if goos == "windows" {
			name, write = base+".zip", writeZip
		}
		if err := writeFile(filepath.Join(out, name), func(w io.Writer) error { return write(w, base, files, mtime) }); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		archives = append(archives, name)
		fmt.Println(filepath.Join(out, name))
	}
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	return writeSums(out, archives)
}

// goCmd is the go command that builds the binaries.
var goCmd = "go"

// build builds the static binary for one target.
func build(bin, goos, goarch, ldflags string) error {
	cmd := exec.Command(goCmd, "build", "-trimpath", "-buildvcs=false",
		"-ldflags", strings.TrimSpace(ldflags+" -s -w -buildid="), "-o", bin, "./cmd/sluice")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOFLAGS=")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s/%s: %w", goos, goarch, err)
	}
	return nil
}

// entry is one file of an archive: its name inside, where it is read from.
type entry struct {
	name string
	path string
	mode int64
}

func writeFile(path string, fill func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeTarGz writes a gzipped tar of the directory dir and files, owned by
// root, every entry at mtime, in the order given; the gzip header carries
// neither a name nor a time.
func writeTarGz(w io.Writer, dir string, files []entry, mtime time.Time) error {
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	hdr := func(name string, mode int64, typ byte, size int64) *tar.Header {
		return &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: size, ModTime: mtime, Uname: "root", Gname: "root"}
	}
	if err := tw.WriteHeader(hdr(dir+"/", 0o755, tar.TypeDir, 0)); err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(hdr(f.name, f.mode, tar.TypeReg, int64(len(b)))); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// writeZip writes a zip of the directory dir and files, every entry at
// mtime (UTC), in the order given.
func writeZip(w io.Writer, dir string, files []entry, mtime time.Time) error {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.BestCompression)
	})
	dh := &zip.FileHeader{Name: dir + "/", Modified: mtime}
	dh.SetMode(os.ModeDir | 0o755)
	if _, err := zw.CreateHeader(dh); err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return err
		}
		fh := &zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: mtime}
		fh.SetMode(os.FileMode(f.mode))
		fw, err := zw.CreateHeader(fh)
		if err != nil {
			return err
		}
		if _, err := fw.Write(b); err != nil {
			return err
		}
	}
	return zw.Close()
}

// writeSums writes SHA256SUMS in the format of sha256sum, sorted by name.
func writeSums(dir string, names []string) error {
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), n)
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644)
}
