// Package oidctest runs a real OpenID provider on loopback for tests:
// zitadel/oidc's op package with its example storage and login page, two
// users and one confidential web client. It is imported by tests only.
package oidctest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

// The client registered at the provider, and its users: alice (of domain
// example.com) and mallory (of another domain).
const (
	ClientID     = "tunnel-app"
	ClientSecret = "tunnel-client-secret"

	Alice, AlicePassword, AliceEmail       = "alice", "alice-pw", "alice@example.com"
	Mallory, MalloryPassword, MalloryEmail = "mallory", "mallory-pw", "mallory@elsewhere.test"
)

// LoginPath is where the provider's login form posts.
const LoginPath = "/login/username"

// Provider is a running provider.
type Provider struct {
	// Issuer is its issuer URL, http://localhost:PORT: "localhost" rather
	// than 127.0.0.1 so a browser keeps its cookies apart from an app's on
	// 127.0.0.1.
	Issuer string
}

// Start runs a provider until the test ends; redirectURIs are the
// client's allowed callback URLs.
func Start(t testing.TB, redirectURIs ...string) *Provider {
	t.Helper()
	users := map[string]any{
		"u1": map[string]any{"ID": "u1", "Username": Alice, "Password": AlicePassword, "FirstName": "Alice", "LastName": "Doe",
			"Email": AliceEmail, "EmailVerified": true, "PreferredLanguage": "en"},
		"u2": map[string]any{"ID": "u2", "Username": Mallory, "Password": MalloryPassword, "FirstName": "Mallory", "LastName": "X",
			"Email": MalloryEmail, "EmailVerified": true, "PreferredLanguage": "en"},
	}
	file := filepath.Join(t.TempDir(), "users.json")
	b, _ := json.Marshal(users)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	us, err := storage.StoreFromFile(file)
	if err != nil {
		t.Fatal(err)
	}
	st := storage.NewStorageWithClients(us, map[string]*storage.Client{
		ClientID: storage.WebClient(ClientID, ClientSecret, redirectURIs...),
	})
	srv := httptest.NewUnstartedServer(nil)
	addr := srv.Listener.Addr().String()
	issuer := "http://localhost:" + addr[strings.LastIndexByte(addr, ':')+1:]
	srv.Config.Handler = exampleop.SetupServer(issuer, st, nil, false)
	srv.Start()
	t.Cleanup(srv.Close)
	return &Provider{Issuer: issuer}
}

var idField = regexp.MustCompile(`name="id" value="([^"]+)"`)

// SignIn is a browser without JavaScript: c (with a cookie jar) opens
// target, which must lead to the provider's login form, and posts user
// and pass to it. It returns the status and body where c's redirects end.
func (p *Provider) SignIn(t testing.TB, c *http.Client, target, user, pass string) (int, string) {
	t.Helper()
	resp, err := c.Get(target)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := idField.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no login form at %s: %d %s", resp.Request.URL, resp.StatusCode, page)
	}
	resp, err = c.PostForm(p.Issuer+LoginPath, url.Values{"id": {string(m[1])}, "username": {user}, "password": {pass}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
