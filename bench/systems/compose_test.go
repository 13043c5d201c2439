package systems

import (
	"os"
	"regexp"
	"strconv"
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
		Profiles     []string `yaml:"profiles"`
		CPUs         string   `yaml:"cpus"`
		MemLimit     string   `yaml:"mem_limit"`
		CgroupParent string   `yaml:"cgroup_parent"`
		Entrypoint   []string `yaml:"entrypoint"`
		Command      []string `yaml:"command"`
		Configs      []struct {
			Source string `yaml:"source"`
			Target string `yaml:"target"`
		} `yaml:"configs"`
		Ulimits map[string]struct {
			Soft string `yaml:"soft"`
			Hard string `yaml:"hard"`
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

// composeVar matches compose's ${NAME:-default} interpolation.
var composeVar = regexp.MustCompile(`\$\{([A-Z0-9_]+):-([^}]*)\}`)

// withDefaults interpolates as compose does when none of the variables is
// set: what a user with a registry gets from `docker compose up`.
func withDefaults(s string) string { return composeVar.ReplaceAllString(s, "$2") }

// systemServices maps each system to its containers, the edge first.
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
		if got := withDefaults(c.Services[svc].Image); got != img {
			t.Errorf("%s image defaults to %q, want %q", svc, got, img)
		}
	}
	for name, s := range c.Services {
		img := withDefaults(s.Image)
		if img == "" || !strings.Contains(img, ":") || strings.HasSuffix(img, ":latest") {
			t.Errorf("%s image %q is not pinned to a tag", name, img)
		}
	}
}

// A peer whose image is absent must not stop the others: each peer is in a
// profile of its own, and loadgen in one that `up` leaves out.
func TestComposeProfiles(t *testing.T) {
	c := loadCompose(t)
	want := map[string]string{"rathole-server": "rathole", "rathole-client": "rathole", "frps": "frp", "frpc": "frp", "loadgen": "loadgen"}
	for name, s := range c.Services {
		got := strings.Join(s.Profiles, ",")
		if got != want[name] {
			t.Errorf("%s profiles = %q, want %q", name, got, want[name])
		}
	}
}

func TestComposeBuildsFromRepositoryDockerfile(t *testing.T) {
	c := loadCompose(t)
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatalf("read Dockerfile: %v", err)
	}
	stages := dockerStages(string(df))
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
		if stages[s.Build.Target] == "" {
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

// dockerStages maps each stage name of a Dockerfile to its base image.
func dockerStages(df string) map[string]string {
	stages := map[string]string{}
	for _, m := range regexp.MustCompile(`(?mi)^FROM\s+(\S+)\s+AS\s+(\S+)`).FindAllStringSubmatch(df, -1) {
		stages[m[2]] = m[1]
	}
	return stages
}

// The offline path pulls nothing: every stage of Dockerfile.local starts
// from scratch, and it has the stages the compose images and the peers
// built from binaries need.
func TestDockerfileLocalIsOffline(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile.local")
	if err != nil {
		t.Fatalf("read Dockerfile.local: %v", err)
	}
	stages := dockerStages(string(df))
	for _, name := range []string{"bench", "sluice", "peer"} {
		if stages[name] == "" {
			t.Errorf("Dockerfile.local has no %s stage (stages: %v)", name, stages)
		}
	}
	for name, base := range stages {
		if base != "scratch" {
			t.Errorf("Dockerfile.local stage %s starts from %s, which needs a registry; want scratch", name, base)
		}
	}
	if n := len(regexp.MustCompile(`(?mi)^FROM\s`).FindAllString(string(df), -1)); n != len(stages) {
		t.Errorf("Dockerfile.local has %d FROM lines but %d named stages", n, len(stages))
	}
}

// dockerStage returns the text of one stage of a Dockerfile.
func dockerStage(df, name string) string {
	loc := regexp.MustCompile(`(?mi)^FROM\s+\S+\s+AS\s+` + regexp.QuoteMeta(name) + `\s*$`).FindStringIndex(df)
	if loc == nil {
		return ""
	}
	rest := df[loc[1]:]
	if next := regexp.MustCompile(`(?mi)^FROM\s`).FindStringIndex(rest); next != nil {
		rest = rest[:next[0]]
	}
	return rest
}

// The edge refuses to start without a state directory it can write, and
// the image's user (nobody) has no home: both images give it one.
func TestDockerfilesGiveTheEdgeAStateDirectory(t *testing.T) {
	for _, file := range []string{"Dockerfile", "Dockerfile.local"} {
		df, err := os.ReadFile("../../" + file)
		if err != nil {
			t.Fatalf("read %s: %v", file, err)
		}
		stage := dockerStage(string(df), "sluice")
		user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindStringSubmatch(stage)
		if user == nil {
			t.Errorf("%s: the sluice stage names no USER", file)
			continue
		}
		if !regexp.MustCompile(`(?m)^ENV XDG_STATE_HOME=/var/lib$`).MatchString(stage) {
			t.Errorf("%s: the sluice stage does not point XDG_STATE_HOME at /var/lib", file)
		}
		if !regexp.MustCompile(`(?m)^COPY .*--chown=` + regexp.QuoteMeta(user[1]) + ` \S+ /var/lib$`).MatchString(stage) {
			t.Errorf("%s: the sluice stage copies no state directory owned by its user %s into /var/lib", file, user[1])
		}
	}
}

// A peer image made from RATHOLE_BIN / FRPS_BIN / FRPC_BIN puts each
// binary where the pinned images have it, since compose names the entry
// point for both.
func TestComposePeerEntrypointsMatchLocalImages(t *testing.T) {
	c := loadCompose(t)
	script, err := os.ReadFile("../../scripts/docker-images.sh")
	if err != nil {
		t.Fatalf("read scripts/docker-images.sh: %v", err)
	}
	for _, name := range []string{"rathole-server", "rathole-client", "frps", "frpc"} {
		ep := c.Services[name].Entrypoint
		if len(ep) != 1 {
			t.Errorf("%s entrypoint = %q, want the peer's binary alone", name, ep)
			continue
		}
		if !regexp.MustCompile(`peer_rootfs "[^"]+" "\$\w+" ` + regexp.QuoteMeta(ep[0]) + `\b`).Match(script) {
			t.Errorf("%s runs %s, but scripts/docker-images.sh puts no binary there", name, ep[0])
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
			soft, err := strconv.Atoi(withDefaults(s.Ulimits["nofile"].Soft))
			if err != nil || soft < 20000 {
				t.Errorf("%s open-file limit %q cannot hold 10,000 connections", name, s.Ulimits["nofile"].Soft)
			}
		}
	}
	tg, lg := c.Services["target"], c.Services["loadgen"]
	if tg.CPUs == "" || tg.CPUs != lg.CPUs || tg.MemLimit != lg.MemLimit {
		t.Errorf("target (%s, %s) and loadgen (%s, %s) limits differ or are missing", tg.CPUs, tg.MemLimit, lg.CPUs, lg.MemLimit)
	}
}

// The load generator must reach each system where that system's config
// says it listens, read memory and CPU from the cgroups the script found
// for it, and say why a peer is skipped.
func TestComposeLoadgenMatchesSystems(t *testing.T) {
	c := loadCompose(t)
	externals := map[string]string{}
	var targetFlag, engine string
	for _, arg := range c.Services["loadgen"].Command {
		if v, ok := strings.CutPrefix(arg, "-external="); ok {
			name, _, _ := strings.Cut(v, "=")
			externals[name] = v
		}
		if v, ok := strings.CutPrefix(arg, "-target="); ok {
			targetFlag = v
		}
		if v, ok := strings.CutPrefix(arg, "-engine="); ok {
			engine = v
		}
	}
	if targetFlag != "tcp=target:5201,http=target:3000" {
		t.Errorf("loadgen -target = %q, want the target service's ports", targetFlag)
	}
	if !strings.Contains(engine, "${SLUICEBENCH_ENGINE") {
		t.Errorf("loadgen -engine = %q, want the engine the script found", engine)
	}
	for sys, svcs := range systemServices {
		spec, ok := externals[sys]
		if !ok {
			t.Errorf("loadgen does not measure %s", sys)
			continue
		}
		e, err := ParseExternal(withDefaults(spec))
		if err != nil {
			t.Fatalf("loadgen -external for %s, variables unset: %v", sys, err)
		}
		upper := strings.ToUpper(sys)
		if !strings.Contains(spec, "${SLUICEBENCH_"+upper+"_CGROUPS:-}") {
			t.Errorf("%s spec %q does not take its cgroups from SLUICEBENCH_%s_CGROUPS", sys, spec, upper)
		}
		if sys != plan.Sluice && !strings.HasSuffix(spec, ",skip=${SLUICEBENCH_SKIP_"+upper+":-}") {
			t.Errorf("%s spec %q does not end with its skip reason", sys, spec)
		}
		parent := c.Services[svcs[0]].CgroupParent
		for _, name := range svcs {
			if c.Services[name].CgroupParent != parent || parent == "" {
				t.Errorf("%s cgroup_parent %q differs from %s's %q", name, c.Services[name].CgroupParent, svcs[0], parent)
			}
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
