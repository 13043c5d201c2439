// Package e2e holds end-to-end tests of the public HTTP edge: a real edge and
// a real agent in process, driven by the clients users bring (curl,
// grpc-go, raw sockets) over loopback, and a real ACME server (Pebble).
// It has no code of its own besides these tests.
package e2e
