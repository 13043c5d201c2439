// Package buildinfo says which build of sluice is running: its version, the
// commit it was built from and whether that tree had uncommitted changes.
//
// The linker sets them where the Go toolchain cannot see the repository: a
// build from a source archive, with -buildvcs=false (as in CI), or a release
// that must come out byte for byte the same (`make build` and `make release`
// pass all three from git):
//
//	-ldflags "-X github.com/sluicehq/sluice/internal/buildinfo.version=v1.2.3
//	          -X github.com/sluicehq/sluice/internal/buildinfo.revision=<commit>
//	          -X github.com/sluicehq/sluice/internal/buildinfo.modified=false"
//
// Otherwise they come from the toolchain's VCS stamp (runtime/debug.ReadBuildInfo),
// which `go build` inside a git checkout writes on its own.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Set by the linker (see the package comment); empty means "not set".
var (
	version  string
	revision string
	modified string
)

// Unknown is the Revision of a build that carries neither a linker stamp nor
// a VCS stamp.
const Unknown = "unknown"

// Info describes one build.
type Info struct {
	// Version is a release tag such as v1.2.3, what `git describe` says
	// between tags (v1.2.3-4-gabc1234), the module's pseudo-version, or
	// "devel" when nothing says more.
	Version string
	// Revision is the full commit hash, or Unknown.
	Revision string
	// Modified is true when the tree had changes not in Revision.
	Modified bool
	// GoVersion is the toolchain that built it.
	GoVersion string
}

// Get returns this build's Info.
func Get() Info { return get() }

var get = sync.OnceValue(func() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, revision, modified, bi)
})

// resolve prefers what the linker set, then the VCS stamp, field by field.
func resolve(ldVersion, ldRevision, ldModified string, bi *debug.BuildInfo) Info {
	in := Info{Version: ldVersion, Revision: ldRevision, Modified: ldModified == "true", GoVersion: runtime.Version()}
	if bi == nil {
		bi = &debug.BuildInfo{}
	}
	if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		in.Version = bi.Main.Version
	}
	if in.Revision == "" {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.modified":
				if ldModified == "" {
					in.Modified = s.Value == "true"
				}
			}
		}
	}
	if in.Version == "" {
		in.Version = "devel"
	}
	if in.Revision == "" {
		in.Revision = Unknown
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	return in
}

// ShortRevision is the first 12 hex digits of the commit, or Unknown.
func (in Info) ShortRevision() string {
	if len(in.Revision) > 12 && in.Revision != Unknown {
		return in.Revision[:12]
	}
	return in.Revision
}

// String is one line for people: "v1.2.3 (commit 0123456789ab, modified)".
func (in Info) String() string {
	s := fmt.Sprintf("%s (commit %s", in.Version, in.ShortRevision())
	if in.Modified {
		s += ", modified"
	}
	return s + ")"
}

// Software names a program of this build for the control protocol's Hello
// and Welcome, e.g. "sluice-agent/v1.2.3", with "+dirty" when the tree was
// modified.
func (in Info) Software(program string) string {
	s := program + "/" + in.Version
	if in.Modified && !strings.HasSuffix(in.Version, "+dirty") {
		s += "+dirty"
	}
	return s
}
