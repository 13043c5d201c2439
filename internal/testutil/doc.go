// Package testutil holds the helpers sluice's tests share: loopback TCP pairs
// and free addresses, local services (echo, checksum), deterministic data,
// and a buffer that a test and the code under test may write concurrently.
// Only _test.go files import it.
//
// Every service a helper starts is stopped by t.Cleanup, and every goroutine
// it started has ended by then, so the packages' goleak checks stay exact.
package testutil
