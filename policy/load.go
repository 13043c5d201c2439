package policy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is a policy that cannot be read or enforced. It names where the rule
// is (file and line, when it came from a file), its phase, the rule and why.
type Error struct {
	// Source is what the spec came from ("agent", "owner contractors",
	// "server"), or its file name.
	Source string
	// File and Line are where the rule is written, when in a file.
	File  string
	Line  int
	Phase Phase
	// Rule is the rule's name, or "#N" for the Nth rule of its phase.
	Rule   string
	Reason string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" && e.Source != e.File {
		b.WriteString(e.Source + ": ")
	}
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q", e.Rule)
		if e.Phase != "" {
			fmt.Fprintf(&b, " (%s)", e.Phase)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Load reads a policy file. It checks its shape (phases, rules, actions,
// each action's fields) and reads the htpasswd files it names; Compile
// checks the rest. Errors are *Error and name the line and the rule.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(data, path)
}

// Parse reads a policy from YAML; name is the file it came from (for
// errors, and to find htpasswd files beside it).
func Parse(data []byte, name string) (*Spec, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{File: name, Reason: "not valid YAML: " + err.Error()}
	}
	if len(doc.Content) == 0 {
		return &Spec{}, nil
	}
	p := parser{name: name, dir: filepath.Dir(name)}
	return p.spec(doc.Content[0])
}

// UnmarshalYAML reads a policy inside another YAML document (an entry of
// the edge's tokens file), with the same checks as Parse; errors give the
// line in that document. htpasswd files are relative to the working
// directory.
func (s *Spec) UnmarshalYAML(n *yaml.Node) error {
	p := parser{dir: "."}
	spec, err := p.spec(n)
	if err != nil {
		return err
	}
	*s = *spec
	return nil
}

func (p *parser) spec(root *yaml.Node) (*Spec, error) {
	spec := &Spec{}
	name := p.name
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return spec, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: name, Line: root.Line, Reason: "a policy is a mapping of phases (on_tcp_connect, on_http_request, on_http_response) to lists of rules"}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		var dst *[]Rule
		switch Phase(k.Value) {
		case OnTCPConnect:
			dst = &spec.OnTCPConnect
		case OnHTTPRequest:
			dst = &spec.OnHTTPRequest
		case OnHTTPResponse:
			dst = &spec.OnHTTPResponse
		default:
			return nil, &Error{File: name, Line: k.Line, Reason: fmt.Sprintf("unknown phase %q: the phases are on_tcp_connect, on_http_request and on_http_response", k.Value)}
		}
		rules, err := p.rules(Phase(k.Value), v)
		if err != nil {
			return nil, err
		}
		*dst = append(*dst, rules...)
	}
	return spec, nil
}

type parser struct {
	name, dir string
}

func (p *parser) errf(n *yaml.Node, ph Phase, rule, format string, args ...any) *Error {
	return &Error{File: p.name, Line: n.Line, Phase: ph, Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

func (p *parser) rules(ph Phase, n *yaml.Node) ([]Rule, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, ph, "", "%s must be a list of rules (each with name, expressions and actions)", ph)
	}
	out := make([]Rule, 0, len(n.Content))
	for i, rn := range n.Content {
		r := Rule{File: p.name, Line: rn.Line}
		label := fmt.Sprintf("#%d", i+1)
		if rn.Kind != yaml.MappingNode {
			return nil, p.errf(rn, ph, label, "a rule is a mapping with name, expressions and actions")
		}
		// The name first, so every later error can name the rule.
		for j := 0; j+1 < len(rn.Content); j += 2 {
			if rn.Content[j].Value == "name" {
				r.Name = rn.Content[j+1].Value
				label = r.label(i)
			}
		}
		for j := 0; j+1 < len(rn.Content); j += 2 {
			k, v := rn.Content[j], rn.Content[j+1]
			switch k.Value {
			case "name":
				if v.Kind != yaml.ScalarNode {
					return nil, p.errf(v, ph, label, "name must be a string")
				}
			case "expressions":
				if err := v.Decode(&r.Expressions); err != nil {
					return nil, p.errf(v, ph, label, "expressions must be a list of CEL expressions (strings)")
				}
			case "actions":
				acts, err := p.actions(ph, label, v)
				if err != nil {
					return nil, err
				}
				r.Actions = acts
			default:
				return nil, p.errf(k, ph, label, "unknown key %q: a rule has name, expressions and actions", k.Value)
			}
		}
		if len(r.Actions) == 0 {
			return nil, p.errf(rn, ph, label, "the rule has no actions: give it a list under actions")
		}
		out = append(out, r)
	}
	return out, nil
}

func (p *parser) actions(ph Phase, label string, n *yaml.Node) ([]Action, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, ph, label, "actions must be a list of {type, config}")
	}
	var out []Action
	for _, an := range n.Content {
		if an.Kind != yaml.MappingNode {
			return nil, p.errf(an, ph, label, "an action is a mapping with type and config")
		}
		a := Action{Line: an.Line}
		var cfgNode *yaml.Node
		for j := 0; j+1 < len(an.Content); j += 2 {
			k, v := an.Content[j], an.Content[j+1]
			switch k.Value {
			case "type":
				a.Type = v.Value
			case "config":
				cfgNode = v
			default:
				return nil, p.errf(k, ph, label, "unknown key %q in an action: an action has type and config", k.Value)
			}
		}
		mk, ok := actionTypes[a.Type]
		if !ok {
			return nil, p.errf(an, ph, label, "action type %q is unknown (known: %s)", a.Type, knownActions())
		}
		cfg := mk()
		if cfgNode != nil {
			if err := decodeConfig(cfgNode, cfg); err != nil {
				return nil, p.errf(cfgNode, ph, label, "%s: %v", a.Type, err)
			}
		}
		if ba, ok := cfg.(*BasicAuth); ok && cfgNode != nil {
			if err := p.htpasswd(cfgNode, ba); err != nil {
				return nil, p.errf(cfgNode, ph, label, "basic-auth: %v", err)
			}
		}
		a.Config = cfg
		out = append(out, a)
	}
	return out, nil
}

// decodeConfig reads an action's config through its JSON form, so the JSON
// tags are the one vocabulary of both the file and the wire, and unknown
// keys are refused in both.
func decodeConfig(n *yaml.Node, cfg any) error {
	var generic any
	if err := n.Decode(&generic); err != nil {
		return err
	}
	if m, ok := generic.(map[string]any); ok {
		delete(m, "htpasswd_file")
	} else if generic != nil {
		return fmt.Errorf("config must be a mapping")
	}
	b, err := json.Marshal(generic)
	if err != nil {
		return fmt.Errorf("config cannot be read: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return cleanJSONError(err)
	}
	return nil
}

// cleanJSONError rewords encoding/json's errors for a YAML reader.
func cleanJSONError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return fmt.Errorf("unknown key %s", f)
	}
	if ute, ok := err.(*json.UnmarshalTypeError); ok {
		return fmt.Errorf("%s must be a %s, not a %s", ute.Field, ute.Type, ute.Value)
	}
	return fmt.Errorf("%s", msg)
}

// htpasswd adds the lines of the config's htpasswd_file (relative to the
// policy file) to the credentials, so the file itself never has to travel.
func (p *parser) htpasswd(n *yaml.Node, ba *BasicAuth) error {
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value != "htpasswd_file" {
			continue
		}
		path := n.Content[j+1].Value
		if !filepath.IsAbs(path) {
			path = filepath.Join(p.dir, path)
		}
		creds, err := ReadHtpasswd(path)
		if err != nil {
			return err
		}
		ba.Credentials = append(ba.Credentials, creds...)
	}
	return nil
}

// ReadHtpasswd reads a file of "user:BCRYPT-HASH" lines (htpasswd -B);
// blank lines and lines starting with # are skipped.
func ReadHtpasswd(path string) ([]Secret, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Secret
	sc := bufio.NewScanner(bytes.NewReader(data))
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		user, hash, ok := cutColon(line)
		if !ok || user == "" || !isBcrypt(hash) {
			return nil, fmt.Errorf("%s:%d: not a user:bcrypt-hash line (make one with htpasswd -nbB USER PASS)", path, ln)
		}
		out = append(out, Secret(line))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no user:bcrypt-hash lines", path)
	}
	return out, nil
}

func isBcrypt(s string) bool {
	return len(s) == 60 && (strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$"))
}
