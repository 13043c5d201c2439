package agent

import (
	"encoding/json"
	"fmt"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/cfgerr"
	"github.com/sluicehq/sluice/policy"
)

// maxPolicyBytes bounds a tunnel's policy in its registration, under the
// control protocol's 64 KiB message limit with room for the rest.
const maxPolicyBytes = 48 << 10

// checkPolicy compiles the tunnel's policy as the edge will, so a mistake is
// an error at start-up rather than a refused registration.
func checkPolicy(field string, t Tunnel) error {
	if t.Policy.Empty() {
		return nil
	}
	if _, err := policy.Compile(policy.Options{Kind: string(t.Kind)}, policy.Layer{Source: "policy", Spec: t.Policy}); err != nil {
		return cfgerr.Wrap("agent", field+".Policy", err)
	}
	b, err := json.Marshal(t.Policy)
	if err != nil {
		return cfgerr.Wrap("agent", field+".Policy", err)
	}
	if len(b) > maxPolicyBytes {
		return configErr(field+".Policy", "the policy is %d bytes in its wire form, over the %d byte limit of a registration: move users to fewer rules", len(b), maxPolicyBytes)
	}
	return nil
}

// policyWire is the policy as Register carries it, nil without one.
func (ts *tunnelState) policyWire() json.RawMessage {
	if ts.cfg.Policy.Empty() {
		return nil
	}
	b, _ := json.Marshal(ts.cfg.Policy) // checked by checkPolicy
	return b
}

// checkPolicyAssigned refuses an edge that did not confirm the policy: it
// predates policies and would expose the service without them.
func (ts *tunnelState) checkPolicyAssigned(m control.Assigned, edge string) error {
	if ts.cfg.Policy.Empty() || m.Policy != "" {
		return nil
	}
	return &control.Error{Ref: m.Ref, Code: control.CodeBadRequest, Message: fmt.Sprintf(
		"the edge at %s does not enforce traffic policies (it runs an older sluice): upgrade the edge, or drop the policy settings", edge)}
}

// policyRefused handles the edge's report that its policy answered clients
// of a tunnel itself.
func (a *Agent) policyRefused(ls *liveSession, m control.PolicyRefused) {
	ts := ls.byID[m.Tunnel]
	if ts == nil {
		return
	}
	a.log.Info("the edge's policy answered clients itself", "tunnel", ts.localLabel(), "source", m.Source, "rule", m.Rule,
		"action", m.Action, "status", m.Status, "count", m.Count, "first", m.Method+" "+m.Path, "client", m.Client)
	if a.metrics != nil {
		a.metrics.policyRefused.WithLabelValues(ts.label(), m.Source, m.Rule, m.Action).Add(float64(m.Count))
	}
	if a.cfg.OnPolicyRefused != nil {
		a.cfg.OnPolicyRefused(ts.index, m)
	}
}
