//go:build !unix

package proc

// RaiseNoFile does nothing where there is no per-process open-file limit to
// raise; 0 says the limit is unknown.
func RaiseNoFile() (uint64, error) { return 0, nil }

// NoFile returns 0: this platform has no open-file limit to read.
func NoFile() uint64 { return 0 }
