package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
)

func writeTokensFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTokensFileRules(t *testing.T) {
	bobSum := sha256.Sum256([]byte("bob-secret"))
	rules, err := LoadTokensFile(writeTokensFile(t, `
tokens:
  - token: alice-secret
    owner: alice
    names: ["alice-*", "*.alice.example.com"]
    ports: ["41000-41009"]
    max_tunnels: 2
  - sha256: `+hex.EncodeToString(bobSum[:])+`
    owner: bob
  - token: alice-laptop
    owner: alice
`))
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, func(c *Config) { c.Tokens = nil; c.TokenRules = rules })
	_, alice := agentAs(t, s, "alice-secret")
	expectAssigned(t, alice, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "alice-web"})
	expectRefused(t, alice, control.Register{Ref: 2, Kind: control.KindHTTP, Name: "bob-web"}, control.CodeForbidden,
		"tokens file entry 1 (owner alice)", "alice-*", "bob-web.localhost")
	expectRefused(t, alice, control.Register{Ref: 3, Kind: control.KindTCP, RemotePort: 42000}, control.CodeForbidden,
		"41000-41009", "42000")
	// A random port is drawn from the token's range.
	p := expectAssigned(t, alice, control.Register{Ref: 4, Kind: control.KindTCP})
	if p.Port < 41000 || p.Port > 41009 {
		t.Fatalf("random port %d outside alice's range", p.Port)
	}
	// max_tunnels: 2 counts across alice's tokens and sessions.
	_, laptop := agentAs(t, s, "alice-laptop")
	expectRefused(t, laptop, control.Register{Ref: 1, Kind: control.KindHTTP}, control.CodeLimit, "owner alice already has 2 tunnels")

	// The hashed token works, and names belong to owners: bob cannot take
	// alice's name, alice's second token sees it as her own.
	_, bob := agentAs(t, s, "bob-secret")
	ce := expectRefused(t, bob, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "alice-web"}, control.CodeNameTaken, "owner alice")
	if strings.Contains(ce.Message, "take it over") {
		t.Fatalf("another owner was offered a takeover: %q", ce.Message)
	}
}

func TestTokensFileErrorsNameTheEntry(t *testing.T) {
	for body, want := range map[string]string{
		"tokens:\n  - token: x\n":                             "entry 1: no owner",
		"tokens:\n  - owner: a\n":                             "entry 1: no token",
		"tokens:\n  - {token: x, owner: a, ports: [\"9-1\"]}": "entry 1: ports entry",
		"tokens:\n  - {sha256: zz, owner: a}":                 "64 hex digits",
		"tokens:\n  - {token: x, owner: a, colour: red}":      "colour",
		"tokens: []\n": "no tokens",
	} {
		_, err := LoadTokensFile(writeTokensFile(t, body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one mentioning %q", body, err, want)
		}
	}
}

func TestTunnelsPerSessionLimit(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Limits.TunnelsPerSession = 3 })
	_, ctrl := handshake(t, s)
	for i := range 3 {
		expectAssigned(t, ctrl, control.Register{Ref: uint32(i + 1), Kind: control.KindTCP})
	}
	expectRefused(t, ctrl, control.Register{Ref: 4, Kind: control.KindTCP}, control.CodeLimit, "3 tunnels")
	if _, ports := s.reg.count(); ports != 3 {
		t.Fatalf("%d ports routed, want 3", ports)
	}
}

// syncLog is a log destination tests can read while the edge writes.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestReloadClosesSessionsOfRemovedTokens(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Tokens = []string{"keep", "drop"} })
	keepSess, keep := agentAs(t, s, "keep")
	a := expectAssigned(t, keep, control.Register{Ref: 1, Kind: control.KindHTTP})
	dropSess, drop := agentAs(t, s, "drop")
	expectAssigned(t, drop, control.Register{Ref: 1, Kind: control.KindHTTP})

	if _, err := s.Reload(Config{}); err == nil {
		t.Fatal("a reload with no token was accepted")
	}
	note, err := s.Reload(Config{Tokens: []string{"keep"}, Listen: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(note, "Listen") {
		t.Fatalf("reload note %q does not say Listen needs a restart", note)
	}
	ce := expectError(t, drop, control.CodeRevoked)
	if !strings.Contains(ce.Message, "removed") {
		t.Fatalf("the dropped agent was told %q", ce.Message)
	}
	<-dropSess.Done()
	select {
	case <-keepSess.Done():
		t.Fatal("the session of a kept token was closed")
	default:
	}
	if ep, ok := s.reg.host(a.Hostname); !ok || ep.size() != 1 {
		t.Fatal("the kept session's tunnel went offline")
	}
	// The removed token no longer authenticates.
	_, ctrl := rawAgent(t, s)
	send(t, ctrl, control.Hello{Version: control.Version}, control.Auth{Token: "drop"})
	expectError(t, ctrl, control.CodeUnauthorized)
}

func TestWarningsAreSummarisedPerSource(t *testing.T) {
	var buf syncLog
	sum := &summary{log: slog.New(slog.NewTextHandler(&buf, nil))}
	for range 100 {
		sum.warn("192.0.2.1", "agent authentication failed: wrong token")
	}
	sum.warn("192.0.2.2", "agent authentication failed: wrong token")
	sum.flush(0)
	out := buf.String()
	if n := strings.Count(out, "\n"); n != 3 {
		t.Fatalf("101 warnings from two sources made %d lines, want 3 (two firsts and one summary):\n%s", n, out)
	}
	if !strings.Contains(out, "source=192.0.2.1 repeats=99") {
		t.Fatalf("no summary with the count:\n%s", out)
	}
}

func TestStreamsPerOwnerLimit(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.Tokens = nil
		c.TokenRules = []TokenRule{{Token: "T", Owner: "alice", MaxStreams: 2}}
	})
	sess, ctrl := handshake(t, s)
	a := expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindTCP})
	// The agent side echoes every stream.
	go func() {
		for {
			st, err := sess.AcceptStream(context.Background())
			if err != nil {
				return
			}
			go func() {
				if _, err := control.ReadHeader(st); err == nil {
					io.Copy(st, st)
				}
				st.Close()
			}()
		}
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", a.Port)
	echoes := func(c net.Conn) bool {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "hi"); err != nil {
			return false
		}
		buf := make([]byte, 2)
		_, err := io.ReadFull(c, buf)
		return err == nil && string(buf) == "hi"
	}
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !echoes(c) {
			t.Fatal("a connection within the owner's limit did not get through")
		}
		held = append(held, c)
	}
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if echoes(third) {
		t.Fatal("a third connection got through an owner limited to two streams")
	}
	held[0].Close()
	// Once a stream ends, the next connection gets through.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		ok := echoes(c)
		c.Close()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the owner's stream count did not go down when a connection closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRandomNameComesBackUnderANamesRule(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.Tokens = nil
		c.TokenRules = []TokenRule{{Token: "T", Owner: "alice", Names: []string{"alice-*"}}}
	})
	sess, ctrl := handshake(t, s)
	a := expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindHTTP})
	waitGone(t, s, sess)
	// The reconnect names the random name; its lease, not the rule, decides.
	_, ctrl2 := handshake(t, s)
	b := expectAssigned(t, ctrl2, control.Register{Ref: 1, Kind: control.KindHTTP, Name: a.Name, Lease: a.Lease})
	if b.Hostname != a.Hostname {
		t.Fatalf("reconnect got %s, want %s", b.Hostname, a.Hostname)
	}
	// Without the lease the rule applies.
	_, ctrl3 := handshake(t, s)
	expectRefused(t, ctrl3, control.Register{Ref: 1, Kind: control.KindHTTP, Name: "other"}, control.CodeForbidden, "alice-*")
}
