package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	vcs := &debug.BuildInfo{
		GoVersion: "go1.99",
		Main:      debug.Module{Version: "v0.0.0-20261206222202-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "fedcba9876543210fedcba9876543210fedcba98"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	for _, tc := range []struct {
		name              string
		ldV, ldR, ldM     string
		bi                *debug.BuildInfo
		version, revision string
		modified          bool
		str, agent        string
	}{
		{"linker stamp, no VCS (CI, source archive)", "v1.2.3", rev, "false", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			"v1.2.3", rev, false, "v1.2.3 (commit 0123456789ab)", "sluice-agent/v1.2.3"},
		{"linker stamp beats the VCS stamp", "v1.2.3", rev, "false", vcs,
			"v1.2.3", rev, false, "v1.2.3 (commit 0123456789ab)", "sluice-agent/v1.2.3"},
		{"VCS stamp alone (go build in a clone)", "", "", "", vcs,
			vcs.Main.Version, "fedcba9876543210fedcba9876543210fedcba98", true,
			vcs.Main.Version + " (commit fedcba987654, modified)", "sluice-agent/" + vcs.Main.Version},
		{"go install module@version", "", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}},
			"v1.4.0", Unknown, false, "v1.4.0 (commit unknown)", "sluice-agent/v1.4.0"},
		{"nothing known", "", "", "", nil,
			"devel", Unknown, false, "devel (commit unknown)", "sluice-agent/devel"},
		{"modified tree from the linker", "v1.2.3-4-g0123456", rev, "true", nil,
			"v1.2.3-4-g0123456", rev, true, "v1.2.3-4-g0123456 (commit 0123456789ab, modified)", "sluice-agent/v1.2.3-4-g0123456+dirty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := resolve(tc.ldV, tc.ldR, tc.ldM, tc.bi)
			if in.Version != tc.version || in.Revision != tc.revision || in.Modified != tc.modified {
				t.Errorf("resolve = %+v; want version %q revision %q modified %t", in, tc.version, tc.revision, tc.modified)
			}
			if s := in.String(); s != tc.str {
				t.Errorf("String() = %q; want %q", s, tc.str)
			}
			if s := in.Software("sluice-agent"); s != tc.agent {
				t.Errorf("Software() = %q; want %q", s, tc.agent)
			}
			if in.GoVersion == "" {
				t.Error("GoVersion is empty")
			}
		})
	}
}
