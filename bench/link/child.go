package link

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sluicehq/sluice/bench/proc"
)

// Role is the proc.ChildEnv value that turns the harness into a link.
const Role = "link"

// specEnv carries a child's Spec as JSON.
const specEnv = "SLUICE_BENCH_LINK"

// spec is what a link child serves: one listener per destination.
type spec struct {
	Shape Shape    `json:"shape"`
	To    []string `json:"to"`
}

// Start runs a link as a child process of the harness (its main must call
// RunChild for Role), one loopback listener per destination, and returns
// the listeners' addresses in the same order. name labels its log in dir.
func Start(dir, name string, shape Shape, to ...string) (*proc.Proc, []string, error) {
	if err := shape.Validate(); err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(spec{Shape: shape, To: to})
	if err != nil {
		return nil, nil, err
	}
	p, line, err := proc.StartChild(name, false, dir, Role, []string{specEnv + "=" + string(b)})
	if err != nil {
		return nil, nil, err
	}
	addrs := strings.Fields(strings.TrimPrefix(line, "ready"))
	if len(addrs) != len(to) {
		p.Stop()
		return nil, nil, fmt.Errorf("%s printed %q, want \"ready\" and %d addresses", name, line, len(to))
	}
	return p, addrs, nil
}

// RunChild serves the link described in the environment until stdin
// closes (the harness stopped it or died).
func RunChild() {
	var s spec
	if err := json.Unmarshal([]byte(os.Getenv(specEnv)), &s); err != nil {
		fmt.Fprintf(os.Stderr, "link: %s is not a link spec: %v\n", specEnv, err)
		os.Exit(2)
	}
	l, err := New(s.Shape)
	if err != nil {
		fmt.Fprintln(os.Stderr, "link:", err)
		os.Exit(2)
	}
	var addrs []string
	for _, to := range s.To {
		ln, err := l.Listen("127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(os.Stderr, "link: listen: %v\n", err)
			os.Exit(2)
		}
		addrs = append(addrs, ln.Addr().String())
		l.Forward(ln, to)
	}
	fmt.Println("ready " + strings.Join(addrs, " "))
	io.Copy(io.Discard, os.Stdin)
	l.Close()
	os.Exit(0)
}
