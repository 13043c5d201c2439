package systems

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results/resultstest"
	"github.com/sluicehq/sluice/bench/target"
	"gopkg.in/yaml.v3"
)

// composeFile is the part of docker-compose.bench.yml the checks read.
type composeFile struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
			Target     string `yaml:"target"`
		} `yaml:"build"`
		CPUs         string   `yaml:"cpus"`
		MemLimit     string   `yaml:"mem_limit"`
		CgroupParent string   `yaml:"cgroup_parent"`
		Command      []string `yaml:"command"`
		Configs      []struct {
			Source string `yaml:"source"`
			Target string `yaml:"target"`
		} `yaml:"configs"`
		Ulimits map[string]struct {
			Soft int `yaml:"soft"`
			Hard int `yaml:"hard"`
		} `yaml:"ulimits"`
	} `yaml:"services"`
	Configs map[string]struct {
		Content string `yaml:"content"`
	} `yaml:"configs"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../../docker-compose.bench.yml")
	if err != nil {
		t.Fatalf("read docker-compose.bench.yml: %v", err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.bench.yml is not valid YAML for compose: %v", err)
	}
	return c
}

// systemServices maps each system to its containers.
var systemServices = map[string][]string{
	plan.Sluice:  {"sluice-server", "sluice-agent", "sluice-http-agent"},
	plan.Rathole: {"rathole-server", "rathole-client"},
	plan.FRP:     {"frps", "frpc"},
}

func TestComposeServicesAndPinnedImages(t *testing.T) {
	c := loadCompose(t)
	want := []string{"target", "loadgen"}
	for _, s := range systemServices {
		want = append(want, s...)
	}
	for _, name := range want {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	if len(c.Services) != len(want) {
		t.Errorf("compose has %d services, want %d: %v", len(c.Services), len(want), resultstest.SortedKeys(c.Services))
	}
	pinned := map[string]string{
		"rathole-server": "rapiz1/rathole:v0.5.0",
		"rathole-client": "rapiz1/rathole:v0.5.0",
		"frps":           "snowdreamtech/frps:0.66.0",
		"frpc":           "snowdreamtech/frpc:0.66.0",
	}
	for svc, img := range pinned {
		if got := c.Services[svc].Image; got != img {
			t.Errorf("%s image = %q, want %q", svc, got, img)
		}
	}
	for name, s := range c.Services {
		if s.Image == "" || !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("%s image %q is not pinned to a tag", name, s.Image)
		}
	}
}

func TestComposeBuildsFromRepositoryDockerfile(t *testing.T) {
	c := loadCompose(t)
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatalf("read Dockerfile: %v", err)
	}
	stages := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?mi)^FROM\s+\S+\s+AS\s+(\S+)`).FindAllStringSubmatch(string(df), -1) {
		stages[m[1]] = true
	}
	if !strings.Contains(string(df), "CGO_ENABLED=0") {
		t.Error("Dockerfile does not build a static binary (CGO_ENABLED=0)")
	}
	if !regexp.MustCompile(`(?m)^FROM golang:\d+\.\d+\.\d+`).Match(df) {
		t.Error("Dockerfile's Go image is not pinned to a patch version")
	}
	built := map[string]string{} // image -> stage
	for name, s := range c.Services {
		if s.Build == nil {
			continue
		}
		if s.Build.Dockerfile != "Dockerfile" || s.Build.Context != "." {
			t.Errorf("%s builds from %s in %s, want the repository's Dockerfile", name, s.Build.Dockerfile, s.Build.Context)
		}
		if !stages[s.Build.Target] {
			t.Errorf("%s builds stage %q, which the Dockerfile does not define (stages: %v)", name, s.Build.Target, resultstest.SortedKeys(stages))
		}
		built[s.Image] = s.Build.Target
	}
	for _, name := range systemServices[plan.Sluice] {
		if built[c.Services[name].Image] != "sluice" {
			t.Errorf("%s runs image %q, not the sluice stage", name, c.Services[name].Image)
		}
	}
	for _, name := range []string{"target", "loadgen"} {
		if built[c.Services[name].Image] != "bench" {
			t.Errorf("%s runs image %q, not the bench stage", name, c.Services[name].Image)
		}
	}
}

func TestComposeLimitsAreEqual(t *testing.T) {
	c := loadCompose(t)
	var cpus, mem string
	for _, svcs := range systemServices {
		for _, name := range svcs {
			s := c.Services[name]
			if s.CPUs == "" || s.MemLimit == "" {
				t.Errorf("%s has no CPU or memory limit", name)
				continue
			}
			if cpus == "" {
				cpus, mem = s.CPUs, s.MemLimit
			}
			if s.CPUs != cpus || s.MemLimit != mem {
				t.Errorf("%s limits cpus=%s mem=%s differ from the other tunnels' cpus=%s mem=%s", name, s.CPUs, s.MemLimit, cpus, mem)
			}
			if s.Ulimits["nofile"].Soft < 20000 {
				t.Errorf("%s open-file limit %d cannot hold 10,000 connections", name, s.Ulimits["nofile"].Soft)
			}
		}
	}
	tg, lg := c.Services["target"], c.Services["loadgen"]
	if tg.CPUs == "" || tg.CPUs != lg.CPUs || tg.MemLimit != lg.MemLimit {
		t.Errorf("target (%s, %s) and loadgen (%s, %s) limits differ or are missing", tg.CPUs, tg.MemLimit, lg.CPUs, lg.MemLimit)
	}
}

// The load generator must reach each system where that system's config
// says it listens, and read memory from the cgroup its containers are in.
func TestComposeLoadgenMatchesSystems(t *testing.T) {
	c := loadCompose(t)
	externals := map[string]*ExternalSystem{}
	var targetFlag string
	for _, arg := range c.Services["loadgen"].Command {
		if v, ok := strings.CutPrefix(arg, "-external="); ok {
			e, err := ParseExternal(v)
			if err != nil {
				t.Fatalf("loadgen -external: %v", err)
			}
			externals[e.Name()] = e
		}
		if v, ok := strings.CutPrefix(arg, "-target="); ok {
			targetFlag = v
		}
	}
	if targetFlag != "tcp=target:5201,http=target:3000" {
		t.Errorf("loadgen -target = %q, want the target service's ports", targetFlag)
	}
	for sys, svcs := range systemServices {
		e := externals[sys]
		if e == nil {
			t.Errorf("loadgen does not measure %s", sys)
			continue
		}
		parent := c.Services[svcs[0]].CgroupParent
		for _, name := range svcs {
			if c.Services[name].CgroupParent != parent || parent == "" {
				t.Errorf("%s cgroup_parent %q differs from %s's %q", name, c.Services[name].CgroupParent, svcs[0], parent)
			}
		}
		if !strings.HasSuffix(e.Cgroup, "/"+parent) {
			t.Errorf("%s memory read from %q, but its containers are in %q", sys, e.Cgroup, parent)
		}
		host, _, _ := strings.Cut(e.Addr, ":")
		if host != svcs[0] {
			t.Errorf("%s measured at %s, want its edge %s", sys, e.Addr, svcs[0])
		}
	}
	cfg := func(name string) string { return c.Configs[name].Content }
	checks := []struct{ where, text, want string }{
		{"rathole server config", cfg("rathole-server"), `bind_addr = "0.0.0.0:6002"`},
		{"rathole client config", cfg("rathole-client"), `local_addr = "target:5201"`},
		{"rathole client config", cfg("rathole-client"), `remote_addr = "rathole-server:2333"`},
		{"frpc config", cfg("frpc"), "remotePort = 6002"},
		{"frpc config", cfg("frpc"), "localPort = 5201"},
		{"frpc config", cfg("frpc"), `customDomains = ["` + target.HTTPHostName + `"]`},
		{"frps config", cfg("frps"), "vhostHTTPPort = 8080"},
		{"sluice tcp agent", strings.Join(c.Services["sluice-agent"].Command, " "), "tcp target:5201 --server sluice-server:7835"},
		{"sluice tcp agent", strings.Join(c.Services["sluice-agent"].Command, " "), "--remote-port 6002"},
		{"sluice http agent", strings.Join(c.Services["sluice-http-agent"].Command, " "), "--name " + strings.TrimSuffix(target.HTTPHostName, ".localhost")},
		{"sluice http agent", strings.Join(c.Services["sluice-http-agent"].Command, " "), "--log-requests=false"},
		{"sluice server", strings.Join(c.Services["sluice-server"].Command, " "), "--http 0.0.0.0:8080"},
	}
	for _, ck := range checks {
		if !strings.Contains(ck.text, ck.want) {
			t.Errorf("%s lacks %q:\n%s", ck.where, ck.want, ck.text)
		}
	}
	for name, s := range c.Services {
		for _, ref := range s.Configs {
			if _, ok := c.Configs[ref.Source]; !ok {
				t.Errorf("%s uses config %q, which is not defined", name, ref.Source)
			}
		}
	}
}
