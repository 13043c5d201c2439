package policy

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// maxExpression bounds one condition's source: conditions are written by
// agents and run on the edge for every request.
const maxExpression = 4096

// The variables each phase's conditions can use. Headers and query are
// maps of lists (a header or parameter can repeat); header names are lower
// case.
var (
	connVars = []cel.EnvOption{
		cel.Variable("conn.client_ip", cel.StringType),
		cel.Variable("conn.client_port", cel.IntType),
		cel.Variable("time.now", cel.TimestampType),
	}
	reqVars = []cel.EnvOption{
		cel.Variable("req.method", cel.StringType),
		cel.Variable("req.host", cel.StringType),
		cel.Variable("req.path", cel.StringType),
		cel.Variable("req.url", cel.StringType),
		cel.Variable("req.query", cel.MapType(cel.StringType, cel.ListType(cel.StringType))),
		cel.Variable("req.headers", cel.MapType(cel.StringType, cel.ListType(cel.StringType))),
	}
	resVars = []cel.EnvOption{
		cel.Variable("res.status", cel.IntType),
		cel.Variable("res.headers", cel.MapType(cel.StringType, cel.ListType(cel.StringType))),
	}
	// inCidrRange(ip, cidr) is true when the address ip is in the CIDR (or
	// equals the single address) cidr; a malformed argument is false.
	cidrFunc = cel.Function("inCidrRange",
		cel.Overload("inCidrRange_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
			cel.BinaryBinding(func(ip, cidr ref.Val) ref.Val {
				a, err := netip.ParseAddr(string(ip.(types.String)))
				if err != nil {
					return types.False
				}
				p, err := parsePrefix(string(cidr.(types.String)))
				if err != nil {
					return types.False
				}
				return types.Bool(p.Contains(a.Unmap()))
			})))
)

// envs holds the CEL environment of each phase.
type envs struct {
	conn, req, res *cel.Env
}

func newEnvs() (*envs, error) {
	mk := func(parts ...[]cel.EnvOption) (*cel.Env, error) {
		opts := []cel.EnvOption{cidrFunc}
		for _, p := range parts {
			opts = append(opts, p...)
		}
		return cel.NewEnv(opts...)
	}
	var e envs
	var err error
	if e.conn, err = mk(connVars); err != nil {
		return nil, err
	}
	if e.req, err = mk(connVars, reqVars); err != nil {
		return nil, err
	}
	if e.res, err = mk(connVars, reqVars, resVars); err != nil {
		return nil, err
	}
	return &e, nil
}

func (e *envs) forPhase(ph Phase) *cel.Env {
	switch ph {
	case OnHTTPRequest:
		return e.req
	case OnHTTPResponse:
		return e.res
	}
	return e.conn
}

// condition is one compiled expression: its CEL program, and its Go form
// when it has one (see cel_fast.go).
type condition struct {
	prg  cel.Program
	fast fastCond
}

// compileCondition checks one expression: it must parse, use only the
// phase's variables, and be a bool.
func compileCondition(env *cel.Env, src string) (condition, error) {
	if len(src) > maxExpression {
		return condition{}, fmt.Errorf("expression is %d bytes, over the %d byte limit", len(src), maxExpression)
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return condition{}, fmt.Errorf("expression %q: %s", src, strings.TrimSpace(iss.Err().Error()))
	}
	if ast.OutputType() != cel.BoolType {
		return condition{}, fmt.Errorf("expression %q is a %s, not a bool", src, ast.OutputType())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return condition{}, err
	}
	return condition{prg: prg, fast: fastCondition(ast)}, nil
}

// input is what conditions see. Maps are built only when a condition
// reads them.
type input struct {
	client netip.AddrPort
	now    time.Time
	r      *http.Request
	status int
	resHdr http.Header

	headers, query, resHeaders map[string][]string
}

// ResolveName implements interpreter.Activation. Scalars are returned as
// CEL values, so the interpreter need not convert (and allocate) them again.
func (in *input) ResolveName(name string) (any, bool) {
	switch name {
	case "conn.client_ip":
		return types.String(in.client.Addr().String()), true
	case "conn.client_port":
		return types.Int(in.client.Port()), true
	case "time.now":
		return types.Timestamp{Time: in.now}, true
	}
	if in.r != nil {
		switch name {
		case "req.method":
			return types.String(in.r.Method), true
		case "req.host":
			return types.String(in.r.Host), true
		case "req.path":
			return types.String(in.r.URL.Path), true
		case "req.url":
			return types.String(in.r.URL.RequestURI()), true
		case "req.query":
			if in.query == nil {
				in.query = in.r.URL.Query()
			}
			return in.query, true
		case "req.headers":
			if in.headers == nil {
				in.headers = lowerHeaders(in.r.Header)
			}
			return in.headers, true
		}
	}
	if in.resHdr != nil {
		switch name {
		case "res.status":
			return types.Int(in.status), true
		case "res.headers":
			if in.resHeaders == nil {
				in.resHeaders = lowerHeaders(in.resHdr)
			}
			return in.resHeaders, true
		}
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (in *input) Parent() interpreter.Activation { return nil }

func lowerHeaders(h http.Header) map[string][]string {
	m := make(map[string][]string, len(h))
	for k, v := range h {
		m[strings.ToLower(k)] = v
	}
	return m
}
