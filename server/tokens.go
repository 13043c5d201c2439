package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/policy"
)

// TokenRule is one entry of the tokens file: a token (or its SHA-256), the
// owner it stands for, and what it may claim.
type TokenRule struct {
	// Token is the secret agents present. Give it or SHA256, not both.
	Token string `yaml:"token"`
	// SHA256 is the hex SHA-256 of the token, so the file need not hold it.
	SHA256 string `yaml:"sha256"`
	// Owner names who the token belongs to; it appears in logs and is the
	// identity names are held by, so two tokens of one owner share names.
	Owner string `yaml:"owner"`
	// Names are the hostname patterns the token may claim (path.Match
	// syntax). A pattern without a dot matches the name under the edge's
	// domain ("alice-*"); one with a dot matches the whole hostname
	// ("*.alice.example.com"). Empty allows every name. Names the edge
	// picks at random are always allowed.
	Names []string `yaml:"names"`
	// Ports are the ports the token may claim, TCP and UDP alike, "N" or
	// "MIN-MAX". Empty allows every port the edge serves.
	Ports []string `yaml:"ports"`
	// MaxTunnels caps the tunnels the owner has open at once across all its
	// sessions and tokens. Zero means the value of the owner's first entry
	// that sets one, else the edge's Limits.TunnelsPerOwner.
	MaxTunnels int `yaml:"max_tunnels"`
	// MaxLeases caps the leases (names and ports, held or kept for an
	// offline agent) the owner holds; beyond it a new lease evicts the
	// owner's offline lease that went offline first. Zero means the value of
	// the owner's first entry that sets one, else Limits.LeasesPerOwner.
	MaxLeases int `yaml:"max_leases"`
	// MaxStreams caps the streams (public connections in flight) the owner
	// has open at once. Zero means the edge's Limits.StreamsPerOwner.
	MaxStreams int `yaml:"max_streams"`
	// Policy is a traffic policy for every tunnel of the owner (see
	// docs/POLICY.md): its rules run after the edge's and before the
	// agent's, which cannot skip them. The policies of an owner's entries
	// add up.
	Policy *policy.Spec `yaml:"policy"`
}

// tokensFile is the YAML document of a tokens file.
type tokensFile struct {
	Tokens []TokenRule `yaml:"tokens"`
}

// TokensFileError reports a problem in the tokens file, naming the entry.
type TokensFileError struct {
	Path  string
	Entry int // 1-based; 0 for the whole file
	Err   error
}

func (e *TokensFileError) Error() string {
	if e.Entry == 0 {
		return fmt.Sprintf("tokens file %s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("tokens file %s: entry %d: %v", e.Path, e.Entry, e.Err)
}

func (e *TokensFileError) Unwrap() error { return e.Err }

// LoadTokensFile reads and checks a tokens file.
func LoadTokensFile(file string) ([]TokenRule, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &TokensFileError{Path: file, Err: err}
	}
	var doc tokensFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, &TokensFileError{Path: file, Err: fmt.Errorf("%v (each entry takes token or sha256, owner, names, ports, max_tunnels, max_leases, max_streams, policy)", err)}
	}
	if len(doc.Tokens) == 0 {
		return nil, &TokensFileError{Path: file, Err: errors.New("no tokens: list at least one under tokens:")}
	}
	for i, r := range doc.Tokens {
		if _, err := compileRule(r, ""); err != nil {
			return nil, &TokensFileError{Path: file, Entry: i + 1, Err: err}
		}
	}
	return doc.Tokens, nil
}

// portRange is an inclusive range of TCP ports.
type portRange struct{ lo, hi int }

// rule is a TokenRule made ready for authentication.
type rule struct {
	hash       [32]byte
	owner      ownerID
	ownerName  string
	names      []string
	ports      []portRange
	maxTunnels int
	maxLeases  int
	maxStreams int
	index      int // 1-based entry in the tokens file; 0 for a plain token
	// policy is the owner's traffic policy: every entry's of that owner.
	policy *policy.Spec
}

func compileRule(r TokenRule, domain string) (*rule, error) {
	c := &rule{ownerName: r.Owner, maxTunnels: r.MaxTunnels, maxLeases: r.MaxLeases, maxStreams: r.MaxStreams, policy: r.Policy}
	if err := checkImposedPolicy("owner "+r.Owner, r.Policy); err != nil {
		return nil, err
	}
	switch {
	case r.Token != "" && r.SHA256 != "":
		return nil, errors.New("give token or sha256, not both")
	case r.Token != "":
		c.hash = sha256.Sum256([]byte(r.Token))
	case r.SHA256 != "":
		b, err := hex.DecodeString(r.SHA256)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("sha256 %q is not 64 hex digits (make it with: printf %%s TOKEN | sha256sum)", r.SHA256)
		}
		copy(c.hash[:], b)
	default:
		return nil, errors.New("no token: give token or sha256")
	}
	if r.Owner == "" {
		return nil, errors.New("no owner: name who the token belongs to")
	}
	c.owner = sha256.Sum256([]byte("owner\x00" + r.Owner))
	if r.MaxTunnels < 0 {
		return nil, fmt.Errorf("max_tunnels is %d: give 0 (the edge's default) or more", r.MaxTunnels)
	}
	if r.MaxLeases < 0 {
		return nil, fmt.Errorf("max_leases is %d: give 0 (the edge's default) or more", r.MaxLeases)
	}
	if r.MaxStreams < 0 {
		return nil, fmt.Errorf("max_streams is %d: give 0 (the edge's default) or more", r.MaxStreams)
	}
	for _, p := range r.Names {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return nil, fmt.Errorf("names pattern %q is not a valid pattern (use * and ? as in shell globs)", p)
		}
		c.names = append(c.names, strings.ToLower(p))
	}
	for _, p := range r.Ports {
		lo, hi, isRange := strings.Cut(p, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
			return nil, fmt.Errorf("ports entry %q: write N or MIN-MAX within 1-65535", p)
		}
		c.ports = append(c.ports, portRange{a, b})
	}
	return c, nil
}

// plainRule is a token given without a tokens file: its hash is the owner.
func plainRule(tok string) *rule {
	h := sha256.Sum256([]byte(tok))
	return &rule{hash: h, owner: h, ownerName: "token:" + hex.EncodeToString(h[:4])}
}

// authTable is the set of accepted tokens, swapped whole on reload.
type authTable struct {
	rules []*rule
}

func newAuthTable(tokens []string, file []TokenRule, domain string) (*authTable, error) {
	t := &authTable{}
	for _, tok := range tokens {
		t.rules = append(t.rules, plainRule(tok))
	}
	for i, r := range file {
		c, err := compileRule(r, domain)
		if err != nil {
			return nil, fmt.Errorf("tokens file entry %d: %w", i+1, err)
		}
		c.index = i + 1
		t.rules = append(t.rules, c)
	}
	// The limit is the owner's, whichever token it uses: the first entry of
	// an owner that sets one gives it to the others.
	firstTunnels, firstLeases := map[ownerID]int{}, map[ownerID]int{}
	for _, r := range t.rules {
		if _, ok := firstTunnels[r.owner]; !ok && r.maxTunnels > 0 {
			firstTunnels[r.owner] = r.maxTunnels
		}
		if _, ok := firstLeases[r.owner]; !ok && r.maxLeases > 0 {
			firstLeases[r.owner] = r.maxLeases
		}
	}
	for _, r := range t.rules {
		if r.maxTunnels == 0 {
			r.maxTunnels = firstTunnels[r.owner]
		}
		if r.maxLeases == 0 {
			r.maxLeases = firstLeases[r.owner]
		}
	}
	// The policy is the owner's too: each entry's rules apply to every
	// tunnel of the owner, whichever token registered it.
	owned := map[ownerID]*policy.Spec{}
	for _, r := range t.rules {
		if !r.policy.Empty() {
			if owned[r.owner] == nil {
				owned[r.owner] = &policy.Spec{}
			}
			owned[r.owner].Append(r.policy)
		}
	}
	for _, r := range t.rules {
		r.policy = owned[r.owner]
	}
	return t, nil
}

// authenticate compares against every rule in constant time, and always
// against all of them, so timing reveals neither which matched nor how much
// of one did.
func (t *authTable) authenticate(token string) *rule {
	h := sha256.Sum256([]byte(token))
	var match *rule
	for _, r := range t.rules {
		if subtle.ConstantTimeCompare(h[:], r.hash[:]) == 1 {
			match = r
		}
	}
	return match
}

// has reports whether the table still accepts the rule's token.
func (t *authTable) lookup(hash [32]byte) *rule {
	for _, r := range t.rules {
		if r.hash == hash {
			return r
		}
	}
	return nil
}

func (r *rule) label() string {
	if r.index == 0 {
		return "the edge's token list"
	}
	return fmt.Sprintf("tokens file entry %d (owner %s)", r.index, r.ownerName)
}

// allowHost reports whether the rule lets its token claim host; label is
// the name under the domain, or "" for an exact hostname.
func (r *rule) allowHost(host, label string) error {
	if len(r.names) == 0 {
		return nil
	}
	for _, p := range r.names {
		subject := host
		if !strings.Contains(p, ".") {
			if label == "" {
				continue
			}
			subject = label
		}
		if ok, _ := path.Match(p, subject); ok {
			return nil
		}
	}
	return fmt.Errorf("%s may claim only names matching %s, not %s", r.label(), strings.Join(r.names, ", "), host)
}

// allowPort reports whether the rule lets its token claim port.
func (r *rule) allowPort(port int) error {
	if len(r.ports) == 0 {
		return nil
	}
	for _, pr := range r.ports {
		if port >= pr.lo && port <= pr.hi {
			return nil
		}
	}
	return fmt.Errorf("%s may claim only ports %s, not %d", r.label(), r.portList(), port)
}

func (r *rule) portList() string {
	var parts []string
	for _, pr := range r.ports {
		if pr.lo == pr.hi {
			parts = append(parts, strconv.Itoa(pr.lo))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", pr.lo, pr.hi))
		}
	}
	return strings.Join(parts, ", ")
}
