// Package server is the sluice edge: it accepts agents on a control listener
// (one mux session per agent), authenticates them, gives their tunnels public
// hostnames and TCP ports, and carries every public connection to the right
// agent as a new stream of that agent's session.
//
// Embed it with New and Serve:
//
//	srv, err := server.New(server.Config{Listen: "127.0.0.1:7835", HTTP: "127.0.0.1:8080", Domain: "localhost", Tokens: []string{"T"}})
//	if err != nil { ... }
//	err = srv.Serve(ctx) // until ctx is done
//
// # Layout
//
// The edge's parts, each in files named for it:
//
//   - server.go: New, Serve, Stats; config.go: Config, its defaults and its
//     validation, in one place; reload.go: Reload.
//   - Admission of agents (admission.go: the gate on unauthenticated
//     connections, auth back-off, log summaries; limits.go), their sessions
//     (preface.go, session.go) and their tokens (tokens.go).
//   - The registry of public addresses (registry.go, lease.go, names.go):
//     every hostname and port is a lease with one owner, kept through
//     reconnects and restarts in a leasestore.Store; register.go turns an
//     agent's Register into a claim on it.
//   - Ingress, the public side: HTTP and HTTPS (ingress_http.go,
//     ingress_https.go, ingress_acme.go), strict request parsing, forwarding
//     headers and the proxy to the agent (ingress_strict.go,
//     ingress_forwarded.go, ingress_proxy.go, ingress_fastpath.go); TCP
//     listeners (tcp.go); UDP ports and their datagram path (udp.go,
//     udp_flow.go); PROXY protocol from load balancers (proxyproto.go).
//   - policy.go: the one check every public request and connection passes
//     before a stream to its agent is opened.
//   - Accounting and observation: streams.go and owners.go (per-owner
//     limits), metrics.go (Prometheus), admin.go (the status page).
package server
