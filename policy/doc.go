// Package policy is the edge's traffic policy: who may reach a tunnel, how
// often, and with what. A policy is a list of rules in three phases
// (on_tcp_connect, on_http_request, on_http_response); each rule has optional
// CEL conditions and a list of actions (basic-auth, openid-connect,
// restrict-ips, rate-limit, verify-webhook, add-headers, remove-headers,
// deny, redirect, custom-response, url-rewrite).
//
// A Spec is the policy as written: in a YAML file (Load, with line numbers
// for errors), built from an agent's options (FromOptions), or carried in the
// agent's registration as JSON. Compile checks and compiles one or more
// layers of specs (the operator's, an owner's, the agent's) once; the
// compiled Policy then decides each connection and request cheaply, without
// I/O of its own except the OpenID provider's endpoints.
//
// The package imports neither server nor agent: the edge calls it at one
// place in its request path and its TCP and UDP accept paths, before a
// stream to the agent is opened, so a refused request costs the agent
// nothing. The vocabulary is documented in docs/POLICY.md.
package policy
