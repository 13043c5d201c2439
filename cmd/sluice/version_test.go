package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/internal/testutil"
)

// A build stamped by the linker, as `make build` and `make release` stamp it
// (and as CI, which builds with -buildvcs=false, must): `sluice version`
// names the version, the commit and the modified tree; sluice_build_info on
// the edge and on the agent carries the three; the agent's version reaches
// the edge's admin listing.
func TestLinkerStampedBuildNamesItself(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped in -short mode")
	}
	const (
		ver = "v9.8.7-test"
		rev = "0123456789abcdef0123456789abcdef01234567"
		pkg = "github.com/sluicehq/sluice/internal/buildinfo"
	)
	bin := filepath.Join(t.TempDir(), "sluice")
	ldflags := fmt.Sprintf("-X %s.version=%s -X %s.revision=%s -X %s.modified=true", pkg, ver, pkg, rev, pkg)
	if err := goBuild(bin, "-buildvcs=false", "-ldflags", ldflags); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("sluice version: %v", err)
	}
	if first := strings.SplitN(string(out), "\n", 2)[0]; first != "sluice "+ver+" (commit 0123456789ab, modified)" {
		t.Errorf("sluice version's first line is %q", first)
	}
	if !strings.Contains(string(out), "commit:           "+rev+"\n") || !strings.Contains(string(out), "modified:         true\n") {
		t.Errorf("sluice version does not name the full commit and the modified tree:\n%s", out)
	}

	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	edgeMetrics := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	agentMetrics := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	srv := startBin(t, bin, "server", "--listen", listen, "--token", "T", "--insecure", "--admin", admin, "--metrics", edgeMetrics)
	tok := srv.waitLine(`admin token (\w+)`)[1]
	srv.waitLine(`admin view on http://` + admin)
	ag := startBin(t, bin, "tcp", "127.0.0.1:9", "--server", listen, "--token", "T", "--insecure", "--metrics", agentMetrics)
	ag.waitLine(`^Forwarding tcp://`)

	for _, m := range []string{edgeMetrics, agentMetrics} {
		sc := testutil.ScrapeMetrics(t, "http://"+m+"/metrics")
		if v := sc.Must(t, "sluice_build_info", "version", ver, "revision", rev, "modified", "true"); v != 1 {
			t.Errorf("%s: sluice_build_info = %v", m, v)
		}
	}

	req, _ := http.NewRequest("GET", "http://"+admin+"/api/status", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Agents []struct{ Software string }
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || len(st.Agents) != 1 || st.Agents[0].Software != "sluice-agent/"+ver+"+dirty" {
		t.Errorf("admin status agents: %+v (err %v); want one with software sluice-agent/%s+dirty", st.Agents, err, ver)
	}
	for _, p := range []*proc{ag, srv} {
		if code := p.stop(syscall.SIGTERM); code != 0 {
			t.Errorf("%v exited %d; stderr:\n%s", p.cmd.Args, code, p.stderr.String())
		}
	}
}

// A plain `go build` inside a git clone needs no linker flags: the
// toolchain's VCS stamp names the commit and whether the tree was modified.
func TestVCSStampNamesTheCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped in -short mode")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(root, ".git")); err != nil || !fi.IsDir() {
		t.Skipf("%s has no .git directory (a source archive, or a git worktree, whose .git file the go command does not stamp from); CI's clone has one", root)
	}
	git := func(args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", root}, args...)...).Output()
		if err != nil {
			t.Skipf("git %v: %v (the VCS stamp needs git)", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	head := git("rev-parse", "HEAD")
	modified := git("status", "--porcelain") != ""
	bin := filepath.Join(t.TempDir(), "sluice")
	if err := goBuild(bin, "-buildvcs=true"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("sluice version: %v", err)
	}
	if !strings.Contains(string(out), "commit:           "+head+"\n") || !strings.Contains(string(out), fmt.Sprintf("modified:         %t\n", modified)) {
		t.Errorf("sluice version built at %s (modified %t) says:\n%s", head, modified, out)
	}
}

// `sluice -h` lists every exit code, and the README's list is the same one.
func TestExitCodesListedInHelpAndReadme(t *testing.T) {
	var out strings.Builder
	if code := run([]string{"-h"}, &out, io.Discard); code != exitOK {
		t.Fatalf("sluice -h: exit %d", code)
	}
	for _, e := range exitCodeList {
		if !strings.Contains(out.String(), fmt.Sprintf("\n  %-4d", e.code)) {
			t.Errorf("sluice -h does not list exit code %d:\n%s", e.code, out.String())
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := exitCodesMarkdown(); !strings.Contains(string(readme), want) {
		t.Errorf("README.md's exit codes differ from exitCodeList; write them as:\n%s", want)
	}
}
