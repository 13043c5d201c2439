// Package deploy_test checks the files an operator installs as they are
// shipped: the systemd units with systemd's own verifier, the compose file
// with compose's own loader, and that the image they run is not root.
package deploy_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

var units = []string{"sluice-edge.service", "sluice-agent.service"}

// systemdAnalyze returns the path of systemd-analyze, skipping the test
// where systemd is not installed (CI installs Debian's).
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found: apt-get install -y systemd (CI installs it)")
	}
	return p
}

// unitCopy writes the unit into a scratch directory with the binary's path
// pointing at an executable that exists here (this test), since verify
// checks that ExecStart's program can run; everything else is as shipped.
func unitCopy(t *testing.T, name string, edit func(string) string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "/usr/local/bin/sluice", self)
	if edit != nil {
		s = edit(s)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// verify runs systemd-analyze verify; any message, even a warning, fails.
func verify(t *testing.T, tool, unit string) (string, error) {
	out, err := exec.Command(tool, "verify", "--man=no", "--generators=no", unit).CombinedOutput()
	if err == nil && len(strings.TrimSpace(string(out))) > 0 {
		err = errors.New("warnings")
	}
	return string(out), err
}

func TestSystemdUnitsVerify(t *testing.T) {
	tool := systemdAnalyze(t)
	for _, u := range units {
		t.Run(u, func(t *testing.T) {
			p := unitCopy(t, u, nil)
			if out, err := verify(t, tool, p); err != nil {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", u, err, out)
			}
			// systemd's own exposure score, 0 (locked down) to 10: "OK" is
			// below 2.5 here, where a unit with no hardening scores 9.6.
			out, err := exec.Command(tool, "security", "--offline=true", "--threshold=25", "--no-pager", p).CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze security %s: exposure above 2.5 (%v)\n%s", u, err, lastLines(string(out), 3))
			}
			t.Log(lastLines(string(out), 1))
		})
	}
}

// The verifier used above does refuse a broken unit, so its silence means
// something.
func TestSystemdVerifyRefusesABrokenUnit(t *testing.T) {
	tool := systemdAnalyze(t)
	for _, edit := range []struct{ from, to string }{
		{"DynamicUser=yes", "DynamicUser=perhaps"},
		{"Restart=always", "Restart=always\nRestartSecc=2s"},
		{"RestartPreventExitStatus=2", "RestartPreventExitStatus=two"},
	} {
		p := unitCopy(t, units[0], func(s string) string { return strings.Replace(s, edit.from, edit.to, 1) })
		if out, err := verify(t, tool, p); err == nil {
			t.Errorf("verify passed a unit with %q:\n%s", edit.to, out)
		}
	}
}

// directives reads a unit's Key=value lines (continuations joined).
func directives(t *testing.T, name string) map[string][]string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]string{}
	sc := bufio.NewScanner(f)
	var line string
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || strings.HasPrefix(l, "[") || l == "" {
			continue
		}
		line += l
		if strings.HasSuffix(line, "\\") {
			line = strings.TrimSuffix(line, "\\") + " "
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		m[k] = append(m[k], v)
		line = ""
	}
	return m
}

// What the edge's unit promises: its own user, its state in
// StateDirectory= handed to --state-dir, restarts, room for descriptors.
func TestEdgeUnitKeepsStateAndRestarts(t *testing.T) {
	d := directives(t, "sluice-edge.service")
	for k, want := range map[string]string{
		"DynamicUser": "yes", "StateDirectory": "sluice", "Restart": "always",
		"LimitNOFILE": "1048576", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
	} {
		if !slices.Contains(d[k], want) {
			t.Errorf("%s=%v; want %s", k, d[k], want)
		}
	}
	if exec := strings.Join(d["ExecStart"], " "); !strings.Contains(exec, "--state-dir ${STATE_DIRECTORY}") {
		t.Errorf("ExecStart does not keep state in StateDirectory: %s", exec)
	}
}

// loadCompose loads the compose file the way `docker compose config` does
// (compose-go is compose's own loader: schema, interpolation, consistency).
func loadCompose(t *testing.T, env []string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"docker-compose.yml"},
		cli.WithWorkingDirectory("."), cli.WithEnv(env), cli.WithConsistency(true), cli.WithDiscardEnvFile)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

var composeEnv = []string{"SLUICE_DOMAIN=tunnel.example.com", "SLUICE_TOKEN=0123abcd", "SLUICE_ACME_EMAIL=ops@example.com"}

func TestComposeEdgeWithACMEAndState(t *testing.T) {
	p, err := loadCompose(t, composeEnv)
	if err != nil {
		t.Fatalf("compose file does not load: %v", err)
	}
	edge, err := p.GetService("edge")
	if err != nil {
		t.Fatal(err)
	}
	cmd := strings.Join(edge.Command, " ")
	for _, want := range []string{"server", "--https=:443", "--http=:80", "--state-dir=/var/lib/sluice", "--listen=:7835"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command %q lacks %s", cmd, want)
		}
	}
	if edge.Environment["SLUICE_DOMAIN"] == nil || *edge.Environment["SLUICE_DOMAIN"] != "tunnel.example.com" {
		t.Errorf("SLUICE_DOMAIN = %v", edge.Environment["SLUICE_DOMAIN"])
	}
	var published []string
	for _, port := range edge.Ports {
		published = append(published, port.Published)
	}
	for _, want := range []string{"80", "443", "7835"} {
		if !slices.Contains(published, want) {
			t.Errorf("port %s not published (%v)", want, published)
		}
	}
	var state bool
	for _, v := range edge.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == "/var/lib/sluice" {
			if _, ok := p.Volumes[v.Source]; ok {
				state = true
			}
		}
	}
	if !state {
		t.Errorf("no named volume at the state directory /var/lib/sluice: %+v", edge.Volumes)
	}
	if edge.Restart != types.RestartPolicyUnlessStopped {
		t.Errorf("restart: %q", edge.Restart)
	}
	if u := edge.Ulimits["nofile"]; u == nil || u.Soft < 65536 {
		t.Errorf("ulimits nofile: %+v", u)
	}
	if edge.Build == nil || edge.Build.Target != "sluice" || filepath.Base(edge.Build.Dockerfile) != "Dockerfile" {
		t.Errorf("build: %+v; want the Dockerfile's sluice stage", edge.Build)
	}
}

// The settings an operator must give are required: compose stops with a
// message naming the variable instead of starting an edge without a domain.
func TestComposeRequiresItsSettings(t *testing.T) {
	for i := range composeEnv {
		env := slices.Delete(slices.Clone(composeEnv), i, i+1)
		name, _, _ := strings.Cut(composeEnv[i], "=")
		_, err := loadCompose(t, env)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: %v; want an error naming it", name, err)
		}
	}
}

// The image the compose file builds (the Dockerfile's last stage, sluice)
// runs as a user other than root, and that user owns the state directory
// the volume is mounted on.
func TestImageRunsAsNonRoot(t *testing.T) {
	for _, file := range []string{"../Dockerfile", "../Dockerfile.local"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var stage, user string
		var stateOwned bool
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) >= 4 && f[0] == "FROM" && strings.EqualFold(f[2], "AS"):
				stage, user, stateOwned = f[3], "", false
			case len(f) == 2 && f[0] == "USER" && stage == "sluice":
				user = f[1]
			case len(f) >= 3 && f[0] == "COPY" && stage == "sluice" && slices.Contains(f, "--chown=65534:65534") && f[len(f)-1] == "/var/lib":
				stateOwned = true
			}
			if stage == "sluice" && len(f) > 0 && f[0] == "ENTRYPOINT" {
				break
			}
		}
		uid, _, _ := strings.Cut(user, ":")
		if uid == "" || uid == "0" || uid == "root" {
			t.Errorf("%s: the sluice stage runs as %q; want a user other than root", file, user)
		}
		if !stateOwned {
			t.Errorf("%s: the sluice stage does not give /var/lib/sluice to 65534", file)
		}
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
