package server

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server/console"
	"github.com/sluicehq/sluice/transport"
)

// TestConsoleCertificates: the console lists the agent listener's
// certificate, a certificate ACME stored for a name (with when its renewal
// starts), and a name whose issuance is failing (with the error and the
// retry), as the edge holds them.
func TestConsoleCertificates(t *testing.T) {
	ca, err := transport.NewCA("console test CA")
	if err != nil {
		t.Fatal(err)
	}
	agentCert, err := ca.Issue("edge.example")
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := transport.ServerTLS{Certificate: &agentCert}.Config()
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	s := startServer(t, func(c *Config) {
		c.TLS = tlsCfg
		c.HTTPS = "127.0.0.1:0"
		c.StateDir = state
		c.ACMEDirectory = "https://127.0.0.1:1/directory"
		c.Admin, c.AdminToken = "127.0.0.1:0", "A"
	})
	// A certificate as autocert stores it: the key and the chain, in PEM,
	// in a file named by the host.
	issued, err := ca.Issue("app.localhost")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := transport.EncodePEM(issued)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "acme", "app.localhost"), append(keyPEM, certPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	s.https.issuer.fail("broken.localhost", hold{}, errors.New("the CA said no"))

	got := map[string]console.Certificate{}
	for _, c := range s.ConsoleBackend().Snapshot().Certificates {
		got[c.Listener+" "+c.Subject] = c
	}
	if c := got["agents edge.example"]; c.State != "static" || c.NotAfter.IsZero() || c.Issuer != "console test CA" {
		t.Errorf("agent listener's certificate: %+v", c)
	}
	c := got["https app.localhost"]
	if c.State != "issued" || c.NotAfter.IsZero() || !c.Renewal.Equal(c.NotAfter.Add(-30*24*time.Hour)) {
		t.Errorf("the ACME certificate: %+v", c)
	}
	if c := got["https broken.localhost"]; c.State != "failing" || c.LastError != "the CA said no" || !c.Retry.After(time.Now()) {
		t.Errorf("the failing name: %+v", c)
	}
	if len(got) != 3 {
		t.Errorf("certificates %v, want these three", got)
	}
}

// TestConsoleActionsOnARealEdge: the edge's Backend, driven as the console
// drives it: the snapshot shows the agent (with the version it gave in its
// hello), its tunnel and its owner; a wrong token is counted as a refusal;
// a disconnected agent's name is held in grace until released, after
// which another owner gets it; revoking a token tells its session, closes
// it and rewrites the tokens file, and a token of the configuration is not
// revocable.
func TestConsoleActionsOnARealEdge(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(file, []byte("tokens:\n  - token: alice-secret  # alice\n    owner: alice\n  - token: bob-secret\n    owner: bob\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rules, err := LoadTokensFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, func(c *Config) {
		c.TokenRules, c.TokensFile = rules, file
		c.Admin, c.AdminToken = "127.0.0.1:0", "A"
	})
	con := s.ConsoleBackend()
	by := console.Actor{Name: "ann", Addr: "127.0.0.1"}
	changed := con.Changed()

	sess, ctrl := rawAgent(t, s)
	send(t, ctrl, control.Hello{Version: control.Version, Software: "sluice-agent/test"}, control.Auth{Token: "alice-secret"})
	if m, err := control.ReadMessage(ctrl); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(control.Welcome); !ok {
		t.Fatalf("want welcome, got %#v", m)
	}
	a := expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "app"})
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the console was not told of the new agent")
	}
	sn := con.Snapshot()
	if len(sn.Sessions) != 1 || sn.Sessions[0].Software != "sluice-agent/test" || sn.Sessions[0].Owner != "alice" || sn.Sessions[0].Tunnels != 1 {
		t.Fatalf("sessions %+v", sn.Sessions)
	}
	if len(sn.Tunnels) != 1 || sn.Tunnels[0].URL != a.URL || sn.Tunnels[0].Owner != "alice" || sn.Tunnels[0].Members != 1 {
		t.Fatalf("tunnels %+v, want %s of alice", sn.Tunnels, a.URL)
	}
	var aliceToken string
	for _, o := range sn.Owners {
		if o.Name == "alice" && len(o.Tokens) == 1 && o.Tokens[0].Revocable && o.Sessions == 1 && o.Tunnels == 1 && o.Leases == 1 {
			aliceToken = o.Tokens[0].ID
		}
	}
	if aliceToken == "" {
		t.Fatalf("owners %+v, want alice with one revocable token, one session, one tunnel, one lease", sn.Owners)
	}

	// A wrong token is summarised among the refusals.
	bad, badCtrl := rawAgent(t, s)
	send(t, badCtrl, control.Hello{Version: control.Version}, control.Auth{Token: "guess"})
	expectError(t, badCtrl, control.CodeUnauthorized)
	bad.Close()
	var refused bool
	for _, r := range con.Snapshot().Refusals {
		refused = refused || r.Kind == console.RefusedAuth && r.Count == 1 && r.LastSource == "127.0.0.1"
	}
	if !refused {
		t.Fatalf("refusals %+v, want one wrong token from 127.0.0.1", con.Snapshot().Refusals)
	}

	// Disconnect: the session ends, its name is held in grace.
	if err := con.Disconnect(sn.Sessions[0].ID, by); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sess.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the session outlived its disconnection")
	}
	// The agent's end reaches the console as a change.
	var leases []console.Lease
	deadline := time.After(5 * time.Second)
	for {
		changed := con.Changed()
		if leases = con.Snapshot().Leases; len(leases) == 1 {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("leases %+v, want one after the disconnect", leases)
		}
	}
	if len(leases) != 1 || leases[0].Owner != "alice" || leases[0].Label != "app.localhost" {
		t.Fatalf("leases after the disconnect %+v, want app.localhost held for alice", leases)
	}
	if err := con.Disconnect(sn.Sessions[0].ID, by); !errors.Is(err, console.ErrNotFound) {
		t.Fatalf("disconnecting it again: %v, want ErrNotFound", err)
	}

	// bob cannot have the name while it is held; after the release he can.
	_, bobCtrl := agentAs(t, s, "bob-secret")
	expectRefused(t, bobCtrl, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "app"}, control.CodeNameTaken)
	if err := con.ReleaseLease(leases[0].Key, by); err != nil {
		t.Fatal(err)
	}
	if l := con.Snapshot().Leases; len(l) != 0 {
		t.Fatalf("leases after the release %+v", l)
	}
	expectAssigned(t, bobCtrl, control.Register{Ref: 2, Kind: control.KindHTTP, Name: "app"})
	if err := con.ReleaseLease(leases[0].Key, by); err == nil || !strings.Contains(err.Error(), "in use by a connected agent") {
		t.Fatalf("releasing a live address: %v, want a refusal", err)
	}

	// Revoke alice's token while she is connected again.
	_, ctrl = agentAs(t, s, "alice-secret")
	if err := con.RevokeToken(aliceToken, by); err != nil {
		t.Fatal(err)
	}
	expectError(t, ctrl, control.CodeRevoked)
	b, _ := os.ReadFile(file)
	if strings.Contains(string(b), "alice") || !strings.Contains(string(b), "bob-secret") {
		t.Fatalf("tokens file after the revoke:\n%s", b)
	}
	if err := con.RevokeToken(aliceToken, by); !errors.Is(err, console.ErrNotFound) {
		t.Fatalf("revoking it again: %v, want ErrNotFound", err)
	}
	bad, badCtrl = rawAgent(t, s)
	send(t, badCtrl, control.Hello{Version: control.Version}, control.Auth{Token: "alice-secret"})
	expectError(t, badCtrl, control.CodeUnauthorized)
	bad.Close()
}

// TestConsoleCannotRevokeConfiguredTokens: a token given in the edge's
// configuration (not its tokens file) has nothing to rewrite.
func TestConsoleCannotRevokeConfiguredTokens(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Admin, c.AdminToken = "127.0.0.1:0", "A" })
	con := s.ConsoleBackend()
	owners := con.Snapshot().Owners
	if len(owners) != 1 || len(owners[0].Tokens) != 1 || owners[0].Tokens[0].Revocable {
		t.Fatalf("owners %+v, want one token, not revocable", owners)
	}
	err := con.RevokeToken(owners[0].Tokens[0].ID, console.Actor{Name: "ann"})
	if err == nil || !strings.Contains(err.Error(), "configuration") {
		t.Fatalf("revoking a configured token: %v", err)
	}
	handshake(t, s) // still accepted
}
